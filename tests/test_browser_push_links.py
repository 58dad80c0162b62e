"""A pushed alert's link opened in a real browser, as its reader would: the demo's red alert on
华南 营业收入 is pushed to a real HTTP receiver with the app's address set, and the link taken
from the payload opens that KPI's detail — at once when signed in, after the sign-in form when
not. A `next` pointing at another site on that form ends on this server."""

from __future__ import annotations

import shutil
from urllib.parse import urlsplit

import pytest

from kpi_core import access, alerts, links, push
from kpi_core.catalog import load_catalog
from tests.browsing import settle
from tests.test_browser import shot, start_app, visit
from tests.test_browser_session import sign_in_form, signed_in_as

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def demo_app(demo_file, tmp_path_factory):
    path = tmp_path_factory.mktemp("pushlinks") / "wh.duckdb"
    shutil.copy(demo_file, path)
    proc, url = start_app(path)
    yield url
    proc.terminate()
    proc.wait(timeout=20)


@pytest.fixture
def pushed_link(demo_app, demo_wh, receiver, monkeypatch, tmp_path):
    """The link of the demo's 华南 营业收入 alert, as a webhook in `lang` received it."""

    def get(lang: str) -> str:
        monkeypatch.setenv("KPI_SECRETS", str(tmp_path / "secrets.toml"))
        monkeypatch.setenv(links.ENV, demo_app)
        r = receiver((200, "ok"))
        push.save_channel(demo_wh, access.SYSTEM, f"hook-{lang}", "webhook", f"{r.base}/h",
                          {"lang": lang})  # fmt: skip
        cat = load_catalog(demo_wh)
        [alert] = [
            a
            for a in alerts.unpushed(demo_wh, cat, access.SYSTEM)
            if (a.unit, a.kpi, a.kind) == ("SALES_S", "REV", "status")
        ]
        push.deliver(demo_wh, alerts.push_messages(demo_wh, [alert]), channels=[f"hook-{lang}"])
        return r.requests[-1]["json"]["link"]

    return get


def detail_title(page, start: str) -> None:
    page.wait_for_function(
        "t => (document.querySelector('h1')?.innerText || '').startsWith(t)",
        arg=start,
        timeout=60_000,
    )


def test_a_signed_out_reader_signs_in_and_lands_on_the_pushed_kpi(browser, demo_app, pushed_link):
    link = pushed_link("en")
    assert link.startswith(f"{demo_app}/Detail?") and "kpi=REV" in link
    ctx = browser.new_context(viewport={"width": 390, "height": 844})
    page = ctx.new_page()
    page.goto(link)
    sign_in_form(page)
    page.locator("input[autocomplete='username']").fill("head_sales")
    page.locator("input[type='password']").fill("head")
    page.locator("input[type='password']").press("Enter")
    page.wait_for_url("**/Detail?*", timeout=60_000)
    settle(page)
    detail_title(page, "Revenue · South China")
    query = urlsplit(page.url).query
    assert all(p in query for p in ("unit=SALES_S", "kpi=REV", "period=2026-10", "lang=en"))
    shot(page, "push-link-after-sign-in-en-390")
    ctx.close()


def test_a_signed_in_reader_goes_straight_to_the_pushed_kpi(browser, demo_app, pushed_link):
    link = pushed_link("zh")
    ctx = browser.new_context(viewport={"width": 1440, "height": 900})
    page = ctx.new_page()
    visit(page, f"{demo_app}/?lang=zh", "head_sales", "head")
    page.goto(link)
    settle(page)
    assert page.locator("input[autocomplete='username']").count() == 0
    detail_title(page, "营业收入 · 华南大区")
    shot(page, "push-link-signed-in-zh-1440")
    ctx.close()


@pytest.mark.parametrize(
    "target",
    ["https://evil.example/Detail?unit=SALES_S&kpi=REV", "//evil.example/Detail?unit=SALES_S",
     "/\\evil.example/Detail", "javascript:alert(document.cookie)"],
)  # fmt: skip
def test_the_sign_in_form_never_sends_the_reader_to_another_site(browser, demo_app, target):
    # The attack: a page of the app whose form's `next` was rewritten to another site (as a
    # crafted link or an injected script would), then the reader signs in as usual.
    ctx = browser.new_context(viewport={"width": 1440, "height": 900})
    page = ctx.new_page()
    page.goto(f"{demo_app}/Detail?unit=SALES_S&kpi=REV&period=2026-10&lang=en")
    sign_in_form(page)
    page.locator("input[name='next']").evaluate("(el, v) => { el.value = v; }", target)
    page.locator("input[autocomplete='username']").fill("head_sales")
    page.locator("input[type='password']").fill("head")
    page.locator("input[type='password']").press("Enter")
    page.wait_for_load_state("load")
    settle(page)
    assert urlsplit(page.url).netloc == urlsplit(demo_app).netloc
    signed_in_as(page, "head_sales")
    ctx.close()
