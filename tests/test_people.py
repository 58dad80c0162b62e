"""One person, one name: user ids, display names and the library's free-text owners resolve to
the user, and every surface shows the display name (issue 19 item 6)."""

from __future__ import annotations

from datetime import date

import pytest

from kpi_core import access, alerts, people, review, screen, service
from kpi_core.catalog import load_catalog
from kpi_core.warehouse import Warehouse
from tests.apptest import open_page

WANG = "王磊 Wang Lei"  # head_sales's display name; the library says 王磊（销售总监）
LI = "李娜 Li Na"  # the analyst, scoped to the whole group


def test_references_resolve_to_the_user(demo_wh):
    who = people.load(demo_wh)
    for ref in ("head_sales", WANG, "王磊", "wang lei", "王磊（销售总监）", "Wang Lei (Sales)"):
        assert who.user_of(ref) == "head_sales", ref
        assert who.name(ref) == WANG, ref
    # Somebody without an account stays as written.
    assert who.user_of("李静（财务总监）") is None
    assert who.name("李静（财务总监）") == "李静（财务总监）"
    assert who.canonical("  Wang Lei ") == "head_sales"
    assert who.canonical("外包 Zhang") == "外包 Zhang"
    assert who.name(None) is None and who.canonical("  ") is None


def test_a_name_two_users_share_names_neither(demo_wh):
    with demo_wh.transaction() as cur:
        cur.execute(
            "INSERT INTO app_user (name, display_name, role, scope) VALUES (?, ?, 'viewer', [])",
            ["wl2", "王磊 Wang Lei-2"],
        )
    who = people.load(demo_wh)
    assert who.user_of("王磊") is None  # two 王磊 now
    assert who.user_of("Wang Lei") == "head_sales"  # the Latin names still differ
    assert who.name("wl2") == "王磊 Wang Lei-2"


def test_stale_alerts_get_the_head_or_the_analysts(demo_wh):
    """On 20 December nothing of November is in: every department's data is overdue. Sales has
    a head; the others have only the group's analyst."""
    alerts.run(demo_wh, access.SYSTEM, today=date(2026, 12, 20), push=False)
    cat = load_catalog(demo_wh)
    stale = alerts.open_alerts(demo_wh, cat, access.SYSTEM, kinds=["stale"])
    owners = dict(zip(stale["unit"], stale["owner"], strict=True))
    assert {"SALES", "PROD", "QA"} <= set(owners)
    who = people.load(demo_wh)
    assert who.name(owners["SALES"]) == WANG
    assert who.name(owners["PROD"]) == LI
    assert all(who.name(o) for o in owners.values()), owners  # never "—"


def test_alerts_store_the_user_and_push_the_display_name(demo_wh):
    """A red light on a sales KPI whose library owner is 王磊（销售总监）: the alert names the
    user, and the push says 王磊 Wang Lei."""
    cat = load_catalog(demo_wh)
    raised = alerts.open_alerts(demo_wh, cat, access.SYSTEM, units=[cat.unit("SALES").id])
    kpi_alerts = raised[raised["kpi"].notna()]
    assert len(kpi_alerts) and set(kpi_alerts["owner"]) == {"head_sales"}
    alert = alerts.alerts_for(
        demo_wh, access.SYSTEM, int(kpi_alerts.iloc[0]["kpi_id"]), cat.unit("SALES").id
    )[0]
    [message] = alerts.push_messages(demo_wh, [alert])
    assert message.owner == WANG


def test_comment_author_and_action_owner_are_users(demo_wh):
    cat = load_catalog(demo_wh)
    head = service.actor(demo_wh, "head_sales")
    rev, sales = cat.kpi("REV").id, cat.unit("SALES").id
    cid = review.add_comment(
        demo_wh, head, rev, sales, date(2026, 10, 1), "Two orders slipped",
        action="Call them", owner="Wang Lei", due=date(2026, 12, 1),
    )  # fmt: skip
    row = demo_wh.one("SELECT created_by, owner FROM comment WHERE id = ?", [cid])
    assert row == ("head_sales", "head_sales")  # the user, whatever name was typed
    risks = screen.screen_data(demo_wh, cat, ["GROUP"], "en", today=date(2026, 11, 20)).risks
    revenue = next(r for r in risks if r.kpi == "Revenue" and r.unit == "Sales Department")
    assert revenue.owner == WANG  # the library's owner, as the user
    assert [a.owner for a in revenue.actions] == [WANG]


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_pages_show_display_names(own_file, monkeypatch, lang):
    wh = Warehouse(own_file, linger=0)
    cat = load_catalog(wh)
    head = service.actor(wh, "head_sales")
    review.add_comment(
        wh, head, cat.kpi("REV").id, cat.unit("SALES").id, date(2026, 10, 1), "Two orders slipped",
        action="Call them", owner="head_sales", due=date(2026, 12, 1),
    )  # fmt: skip
    wh.close()
    at = open_page("pages/8_Alerts.py", own_file, monkeypatch, lang, timeout=90)
    table = at.dataframe[0].value
    owner = "Owner" if lang == "en" else "责任人"
    shown = set(table[owner])
    assert WANG in shown and "王磊（销售总监）" not in shown and "head_sales" not in shown
    assert WANG in at.multiselect(key="al_f_owners").options
    at = open_page(
        "pages/1_Board.py", own_file, monkeypatch, lang,
        query={"unit": "SALES", "period": "2026-10"},
    )  # fmt: skip
    at.session_state["board_rv_open"] = True
    at.run()
    words = "\n".join([m.value for m in at.markdown] + [t.value for t in at.text])
    assert WANG in words and "head_sales" not in words
    at = open_page("app.py", own_file, monkeypatch, lang, query={"period": "2026-10"})
    tops = [d.value for d in at.dataframe if owner in d.value.columns]
    assert tops and WANG in set(tops[0][owner]) and "王磊（销售总监）" not in set(tops[0][owner])


def test_the_library_says_whom_an_owner_names(own_file, monkeypatch):
    at = open_page("pages/4_Library.py", own_file, monkeypatch, "en")
    at.text_input(key="lib_f_owner").input("王磊（销售总监）").run()
    assert "Linked to the user 王磊 Wang Lei (head\\_sales)" in [c.value for c in at.caption]
    at.text_input(key="lib_f_owner").input("李静（财务总监）").run()
    assert "No account matches: shown as typed" in [c.value for c in at.caption]
