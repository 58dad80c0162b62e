"""Review comments and actions (复盘) in the core: who may write, scope, overdue, text as typed."""

from datetime import date

import pandas as pd
import pytest

from kpi_core import audit, review
from kpi_core.access import SYSTEM, Actor, Scope
from kpi_core.catalog import load_catalog
from kpi_core.errors import NotFoundError, ScopeError
from kpi_core.periods import parse_period
from kpi_core.review import CommentError

BOTH_ENGINES = True  # the file and PostgreSQL (tests/conftest.py)


@pytest.fixture
def sales(sales_wh):
    cat = load_catalog(sales_wh)
    return sales_wh, cat


def actor(cat, role: str, *codes: str, name: str = "someone") -> Actor:
    ids: set[int] = set()
    for code in codes:
        ids.update(cat.descendants(cat.unit(code).id))
    return Actor(name, role, Scope(frozenset(ids)))


def ids(cat, unit: str, kpi: str) -> tuple[int, int]:
    return cat.kpi(kpi).id, cat.unit(unit).id


def test_add_list_and_close(sales):
    wh, cat = sales
    head = actor(cat, "head", "SALES", name="head_sales")
    rev, sales_id = ids(cat, "SALES", "REV")
    plain = review.add_comment(wh, head, rev, sales_id, date(2024, 6, 1), "June was slow.")
    action = review.add_comment(
        wh,
        head,
        rev,
        sales_id,
        parse_period("2024-Q3"),  # a quarter is kept as its last month
        "Q3 behind plan.",
        action="Call the ten largest customers",
        owner="wang",
        due=date(2024, 10, 15),
    )
    assert action > plain

    rows = review.comments(wh, cat, head, kpi_id=rev, unit_id=sales_id)
    assert rows["id"].tolist() == [action, plain]  # newest first
    first = rows.iloc[0]
    assert first["period"].date() == date(2024, 9, 1)
    assert (first["action"], first["owner"], first["state"]) == (
        "Call the ten largest customers",
        "wang",
        "open",
    )
    assert first["due"].date() == date(2024, 10, 15)
    assert pd.isna(rows.iloc[1]["state"]) and pd.isna(rows.iloc[1]["action"])

    june = review.comments(wh, cat, head, start=date(2024, 6, 1), end=date(2024, 6, 1))
    assert june["id"].tolist() == [plain]
    assert review.comments(wh, cat, head, open_actions_only=True)["id"].tolist() == [action]

    review.close_action(wh, head, action, "Seven called, two orders recovered.")
    closed = review.comments(wh, cat, head, kpi_id=rev).set_index("id").loc[action]
    assert closed["state"] == "closed" and closed["closed_by"] == "head_sales"
    assert closed["resolution"] == "Seven called, two orders recovered."
    assert review.comments(wh, cat, head, open_actions_only=True).empty
    with pytest.raises(CommentError, match="already closed"):
        review.close_action(wh, head, action, "again")
    with pytest.raises(CommentError, match="no action"):
        review.close_action(wh, head, plain, "nothing to close")

    log = audit.entries(wh, cat, SYSTEM, entities=["comment"])
    assert set(log["field"]) == {"text", "action", "state"}
    assert (log["changed_by"] == "head_sales").all()
    assert any(k.startswith("SALES/REV/2024-09#") for k in log["key"])
    state = log[log["field"] == "state"].iloc[0]
    assert (state["old"], state["new"], state["reason"]) == (
        "open",
        "closed",
        "Seven called, two orders recovered.",
    )


def test_viewers_read_but_do_not_write(sales):
    wh, cat = sales
    rev, sales_id = ids(cat, "SALES", "REV")
    review.add_comment(wh, SYSTEM, rev, sales_id, date(2024, 6, 1), "Admin note.")
    viewer = actor(cat, "viewer", "SALES")
    assert len(review.comments(wh, cat, viewer)) == 1
    assert not review.can_comment(viewer, sales_id)
    with pytest.raises(CommentError, match="can read comments but not write them"):
        review.add_comment(wh, viewer, rev, sales_id, date(2024, 6, 1), "Me too.")
    cid = review.add_comment(
        wh,
        SYSTEM,
        rev,
        sales_id,
        date(2024, 6, 1),
        "x",
        action="a",
        owner="o",
        due=date(2024, 7, 1),
    )
    with pytest.raises(CommentError):
        review.close_action(wh, viewer, cid, "done")
    for role in ("head", "analyst", "admin"):
        assert review.can_comment(actor(cat, role, "SALES"), sales_id)


def test_scope_limits_writes_and_reads(sales):
    wh, cat = sales
    rev, sales_id = ids(cat, "SALES", "REV")
    oee, prod_id = ids(cat, "PROD", "OEE")
    review.add_comment(wh, SYSTEM, rev, sales_id, date(2024, 6, 1), "sales")
    review.add_comment(wh, SYSTEM, rev, cat.unit("EAST").id, date(2024, 6, 1), "east")
    review.add_comment(wh, SYSTEM, oee, prod_id, date(2024, 6, 1), "prod")
    prod_head = actor(cat, "head", "PROD")
    assert review.comments(wh, cat, prod_head)["text"].tolist() == ["prod"]
    assert sorted(review.comments(wh, cat, actor(cat, "viewer", "SALES"))["text"]) == [
        "east",
        "sales",
    ]
    with pytest.raises(ScopeError):
        review.add_comment(wh, prod_head, rev, sales_id, date(2024, 6, 1), "not mine")
    with pytest.raises(ScopeError):
        review.comments(wh, cat, prod_head, unit_id=sales_id)
    sales_action = review.add_comment(
        wh,
        SYSTEM,
        rev,
        sales_id,
        date(2024, 6, 1),
        "x",
        action="a",
        owner="o",
        due=date(2024, 7, 1),
    )
    with pytest.raises(ScopeError):
        review.close_action(wh, prod_head, sales_action, "closed from outside")
    counts = review.counts(
        wh, cat, prod_head, [(rev, sales_id), (oee, prod_id)], date(2024, 1, 1), date(2024, 12, 1)
    )
    assert counts == {(oee, prod_id): (1, 0)}


def test_open_actions_flag_overdue_against_today(sales):
    wh, cat = sales
    rev, sales_id = ids(cat, "SALES", "REV")

    def action(month: date, text: str, what: str, due: date) -> int:
        return review.add_comment(
            wh, SYSTEM, rev, sales_id, month, text, action=what, owner="o", due=due
        )

    late = action(date(2024, 5, 1), "a", "late", date(2024, 6, 30))
    due_today = action(date(2024, 6, 1), "b", "today", date(2024, 7, 1))
    later = action(date(2024, 6, 1), "c", "later", date(2024, 8, 1))
    done = action(date(2024, 4, 1), "d", "done", date(2024, 5, 1))
    review.close_action(wh, SYSTEM, done, "did it")
    review.add_comment(wh, SYSTEM, rev, sales_id, date(2024, 6, 1), "no action")
    acts = review.open_actions(wh, cat, SYSTEM, today=date(2024, 7, 1))
    assert acts["id"].tolist() == [late, due_today, later]  # soonest due first; closed left out
    # Due on the day itself is not yet overdue.
    assert acts["overdue"].tolist() == [True, False, False]
    counts = review.counts(wh, cat, SYSTEM, [(rev, sales_id)], date(2024, 1, 1), date(2024, 12, 1))
    assert counts == {(rev, sales_id): (5, 3)}


def test_text_is_stored_and_returned_exactly_as_typed(sales):
    wh, cat = sales
    rev, sales_id = ids(cat, "SALES", "REV")
    nasty = '<script>alert("x")</script> **bold** =HYPERLINK("http://x") \n  line two  '
    cid = review.add_comment(
        wh, SYSTEM, rev, sales_id, date(2024, 6, 1), nasty,
        action="<img src=x onerror=alert(1)>", owner="<b>o</b>", due=date(2024, 7, 1),
    )  # fmt: skip
    row = review.comments(wh, cat, SYSTEM).set_index("id").loc[cid]
    assert row["text"] == nasty
    assert row["action"] == "<img src=x onerror=alert(1)>" and row["owner"] == "<b>o</b>"


def test_bad_input_gets_a_clear_message(sales):
    wh, cat = sales
    rev, sales_id = ids(cat, "SALES", "REV")
    when = date(2024, 6, 1)
    with pytest.raises(CommentError, match="empty"):
        review.add_comment(wh, SYSTEM, rev, sales_id, when, "   \n ")
    with pytest.raises(CommentError, match="2,001 characters long; the limit is 2,000"):
        review.add_comment(wh, SYSTEM, rev, sales_id, when, "x" * 2001)
    review.add_comment(wh, SYSTEM, rev, sales_id, when, "x" * 2000)
    with pytest.raises(CommentError, match="needs an owner"):
        review.add_comment(wh, SYSTEM, rev, sales_id, when, "t", action="a", due=when)
    with pytest.raises(CommentError, match="needs a due date"):
        review.add_comment(wh, SYSTEM, rev, sales_id, when, "t", action="a", owner="o")
    with pytest.raises(CommentError, match="belongs to an action"):
        review.add_comment(wh, SYSTEM, rev, sales_id, when, "t", owner="o")
    with pytest.raises(NotFoundError):
        review.add_comment(wh, SYSTEM, 999, sales_id, when, "t")
    with pytest.raises(NotFoundError, match="alert 42"):
        review.add_comment(wh, SYSTEM, rev, sales_id, when, "t", alert_id=42)
    # Nothing partial: only the one valid comment was written, with its one audit row.
    assert len(review.comments(wh, cat, SYSTEM)) == 1
    assert len(audit.entries(wh, cat, SYSTEM, entities=["comment"])) == 1
