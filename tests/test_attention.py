"""Issue 21 item 1: the Board's "needs attention" list on the demo — red and at-risk KPIs of a
unit and of the units below it, the reason in words, and the sub-unit that caused a parent."""

from __future__ import annotations

import pytest

from kpi_core import alerts, attention, memo, service
from kpi_core.actuals import data_range
from kpi_core.board import board
from kpi_core.catalog import load_catalog
from kpi_core.errors import ScopeError
from kpi_core.periods import Period
from kpi_core.warehouse import Warehouse
from tests.apptest import ok, open_page


@pytest.fixture(scope="module")
def demo(demo_file):
    wh = Warehouse(demo_file, linger=0)
    try:
        yield wh, load_catalog(wh)
    finally:
        wh.close()


def _list(wh, cat, unit: str, user: str = "head_sales"):
    who = service.actor(wh, user)
    _, latest = data_range(wh, who.scope, cat)
    b = board(wh, cat, who.scope, cat.unit(unit).id, Period("M", latest), as_of=latest)
    return b, latest, attention.needs_attention(wh, cat, b.result, b.matrix, latest)


def test_sales_lists_south_china_red_first_with_the_reason(demo):
    wh, cat = demo
    _, _, items = _list(wh, cat, "SALES")
    south = cat.unit("SALES_S").id
    reds = [i for i in items if i.kind == attention.RED]
    assert [(cat.kpis[i.kpi_id].code, i.unit_id) for i in reds] == [
        ("REV", south),
        ("CONVERSION", south),
    ]
    # Red first, then the at-risk ones.
    assert items[: len(reds)] == reds and len(items) > len(reds)
    assert attention.text(reds[0], cat, "zh").startswith("营业收入 红灯 — 华南大区 43.0（基准 60）")
    assert attention.text(reds[0], cat, "en").startswith(
        "Revenue red — South China Region 43.0 (baseline 60)"
    )
    # South China's revenue is red because of its own conversion rate.
    assert "主因：拜访成单率 红灯 19.4" in attention.text(reds[0], cat, "zh")


def test_at_risk_is_the_alert_rules_own_and_names_the_sub_unit(demo):
    wh, cat = demo
    b, latest, items = _list(wh, cat, "SALES")
    risky = alerts.at_risk(wh, cat, b.matrix, latest)
    assert {(i.kpi_id, i.unit_id) for i in items if i.kind == attention.AT_RISK} == set(risky)
    sales_rev = next(
        i for i in items if i.unit_id == cat.unit("SALES").id and cat.kpis[i.kpi_id].code == "REV"
    )
    assert sales_rev.kind == attention.AT_RISK
    # The department's revenue is held down by South China (25 % weight, score 43).
    assert sales_rev.cause.unit_id == cat.unit("SALES_S").id
    zh = attention.text(sales_rev, cat, "zh")
    assert (
        zh.startswith("营业收入 预计全年未达标 — 销售部 预测 ") and "主因：华南大区 红灯 43.0" in zh
    )
    en = attention.text(sales_rev, cat, "en")
    assert "cause: South China Region red 43.0" in en and "target " in en


def test_a_green_unit_has_an_empty_list(demo):
    wh, cat = demo
    _, _, items = _list(wh, cat, "SALES_E")
    assert items == []


def test_a_company_value_without_tree_children_names_the_unit_below(demo):
    """The company's complaint rate is aggregated from Customer Service's actuals, not rolled up
    in the tree: the unit below that is red is still named as the cause."""
    wh, cat = demo
    _, _, items = _list(wh, cat, "GROUP", user="admin")
    group = next(
        i
        for i in items
        if i.unit_id == cat.unit("GROUP").id and cat.kpis[i.kpi_id].code == "COMPLAINT_RATE"
    )
    assert group.kind == attention.RED and group.cause.unit_id == cat.unit("CS").id
    assert attention.text(group, cat, "zh").endswith("主因：客户服务部 红灯 47.8")


# --- Issue 22: the list is kept per data version, the caller's scope and the inputs ---------


def test_the_kept_list_is_the_callers_own(demo):
    """A department head asking after the admin gets their own list, not the admin's: the
    scope is part of the key (the Overview's list would be the whole company's otherwise)."""
    wh, cat = demo
    admin, head = service.actor(wh, "admin"), service.actor(wh, "head_sales")
    _, latest = data_range(wh, admin.scope, cat)
    month = Period("M", latest)

    def listed(who):
        return attention.overview_list(
            wh, cat, who.scope, month, latest, today=latest, grace_days=5
        )

    everyone = listed(admin)
    own = listed(head)
    sales = set(cat.descendants(cat.unit("SALES").id))
    assert own and {i.unit_id for i in own} <= sales
    assert {i.unit_id for i in everyone} - sales  # the admin's reaches beyond Sales
    # The company's Board list, kept for the admin, is refused to the head of Sales.
    group = cat.unit("GROUP").id
    assert attention.board_list(wh, cat, admin.scope, group, month, latest)
    with pytest.raises(ScopeError):
        attention.board_list(wh, cat, head.scope, group, month, latest)


def test_the_kept_list_follows_a_commit(demo_wh):
    wh = demo_wh
    cat = load_catalog(wh)
    head = service.actor(wh, "head_sales")
    _, latest = data_range(wh, head.scope, cat)
    month, sales = Period("M", latest), cat.unit("SALES").id
    first = attention.board_list(wh, cat, head.scope, sales, month, latest)
    misses = memo.stats["misses"]
    assert attention.board_list(wh, cat, head.scope, sales, month, latest) is first
    assert memo.stats["misses"] == misses  # the same data: nothing computed again
    with wh.transaction() as cur:  # North China's revenue collapses
        cur.execute(
            "UPDATE actual SET value = value / 10 WHERE period = ? AND unit_id = ? "
            "AND kpi_id = (SELECT id FROM kpi WHERE code = 'REV')",
            [latest, cat.unit("SALES_N").id],
        )
    cat = load_catalog(wh)
    again = attention.board_list(wh, cat, head.scope, sales, month, latest)
    north_rev = (cat.kpi("REV").id, cat.unit("SALES_N").id)
    assert north_rev not in {(i.kpi_id, i.unit_id) for i in first if i.kind == attention.RED}
    assert north_rev in {(i.kpi_id, i.unit_id) for i in again if i.kind == attention.RED}
    b = board(wh, cat, head.scope, sales, month, as_of=latest)
    assert again == attention.for_board(wh, cat, b, latest)


@pytest.mark.parametrize("page, query", [("pages/1_Board.py", {"unit": "SALES"}), ("app.py", {})])
def test_a_warm_run_forecasts_nothing_again(own_file, monkeypatch, page, query):
    """The forecasts behind "at risk" were the largest part of a warm Board run (issue 22)."""
    at = open_page(page, own_file, monkeypatch, user="head_sales", query=query)
    listed = [link.proto.label for link in at.get("page_link") if "■" in link.proto.label]
    assert listed
    calls = []
    real = alerts.at_risk

    def counted(*args, **kwargs):
        calls.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(alerts, "at_risk", counted)
    at.run()
    ok(at)
    assert calls == []
    assert [link.proto.label for link in at.get("page_link") if "■" in link.proto.label] == listed


def test_the_rest_of_the_list_is_drawn_when_opened_and_only_what_can_be_read(own_file, monkeypatch):
    """Issue 22: on a large company the list behind "N more" has thousands of lines; it is
    drawn when the button is opened, and only its first lines."""
    from kpi_core.ui import detail

    at = open_page("app.py", own_file, monkeypatch)  # the admin's Overview: the whole company

    def lines():
        labels = [link.proto.label for link in at.get("page_link")]
        return [t for t in labels if "■" in t or "▲" in t]

    shown = lines()
    assert len(shown) == 6

    def blocks(node):
        yield node
        for child in getattr(node, "children", {}).values():
            yield from blocks(child)

    more = next(b for b in blocks(at._tree) if getattr(b, "type", None) == "popover")
    rest = int(more.proto.popover.label.split()[0])
    assert rest > 2
    monkeypatch.setattr(detail, "MORE_SHOWN", 2)
    at.session_state["na_more"] = True
    at.run()
    ok(at)
    assert lines()[:6] == shown and len(lines()) == 8
    assert f"{rest - 2} more that cost fewer points are not listed here." in [
        c.value for c in at.caption
    ]
