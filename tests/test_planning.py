"""Targets and weights edited in place (kpi_core.planning): dated versions, the cell-level checks,
two editors at once, scope, history, revert and the audit log — on real DuckDB files."""

from __future__ import annotations

from datetime import date

import pandas as pd
import pytest

from kpi_core import access, audit, month_locks, planning, service, target_history
from kpi_core.access import Scope, User
from kpi_core.catalog import SCORECARD, load_catalog
from kpi_core.errors import ScopeError, ValidationError
from kpi_core.periods import Period
from kpi_core.scorecard import evaluate

BOTH_ENGINES = True  # the file and PostgreSQL (tests/conftest.py)

ADMIN = access.SYSTEM


def actor(wh, name: str, role: str, *units: str) -> access.Actor:
    cat = load_catalog(wh)
    return service.actor_for(User(name, name, role, units), cat)


def score(wh, unit: str, period: str) -> dict:
    cat = load_catalog(wh)
    p = Period("M", date.fromisoformat(period + "-01"))
    res = evaluate(wh, cat, Scope.all(), [cat.unit(unit).id], p)[cat.unit(unit).id]
    kpis = {cat.kpis[n.kpi_id].code: (n.score, n.status) for _, n in res.kpi_children()}
    return {"score": res.score, "status": res.status, "kpis": kpis}


def grid(wh, who, unit="SALES", year=2024, grain="Y", lang="en"):
    cat = load_catalog(wh)
    return planning.target_grid(
        wh, cat, who, cat.unit(unit).id, year, grain, lang, date(2024, 12, 1)
    )


def row_of(g: pd.DataFrame, code: str, period: str = "2024") -> int:
    return int(g.index[(g["code"] == code) & (g["period"] == period)][0])


def edit(wh, g, changes: dict[tuple[str, str], str], period: str = "2024"):
    """Edits of the grid `g`: {(UNIT/KPI, column): typed text}."""
    edited = g.copy()
    for (code, col), text in changes.items():
        edited[col] = edited[col].astype(object)
        edited.at[row_of(g, code, period), col] = text
    return planning.target_edits(wh, load_catalog(wh), g, edited)


def target_rows(wh) -> int:
    return wh.one("SELECT count(*) FROM target")[0]


# --- The grid -----------------------------------------------------------------------------------


def test_grid_shows_levels_as_people_type_them(sales_wh):
    head = actor(sales_wh, "wang", "head", "SALES")
    g = grid(sales_wh, head)
    rev = g.loc[row_of(g, "SALES/REV")]
    assert (rev["baseline"], rev["target"], rev["challenge"]) == (
        "50,000,000",
        "60,000,000",
        "70,000,000",
    )
    assert g.loc[row_of(g, "SALES/COLLECT_RATE"), "target"] == "95%"
    assert grid(sales_wh, head, lang="zh").loc[row_of(g, "SALES/REV"), "target"] == "6000万"
    # KPI nodes of the tree under SALES, in tree order, and all editable for the head.
    assert list(g["code"]) == [
        "SALES/REV", "SALES/NEW_CUST", "SALES/CSAT", "SALES/COLLECT_RATE", "EAST/REV", "NORTH/REV",
    ]  # fmt: skip
    assert g["editable"].all()
    assert set(g["version"]) == {1}


def test_quarter_grid_shows_the_phased_target_in_use(sales_wh):
    g = grid(sales_wh, ADMIN, grain="Q")
    q1 = g.loc[row_of(g, "SALES/REV", "2024-Q1")]
    assert q1["target"] == "" and q1["version"] == 0
    assert q1["applies"] == "15,000,000"  # a quarter of 60,000,000, phased evenly
    assert g.loc[row_of(g, "SALES/CSAT", "2024-Q3"), "applies"] == "90"  # avg: the year's level


def test_typed_levels_are_read_the_way_uploads_are():
    kpi = load = None  # noqa: F841 - readability of the cases below
    from kpi_core.library import Kpi

    money = Kpi(1, "REV", "营业收入", "Revenue", "元", "up", "sum")
    pct = Kpi(2, "CR", "回款率", "Collection rate", "%", "up", "ratio")
    for v in (50_000_000.0, 1234.5, -250_000.0, 60.0, 1e12):
        for lang in ("zh", "en"):
            assert planning._parse_level(planning.level_text(v, money, lang)) == v
    assert planning.level_text(0.955, pct) == "95.5%"
    assert planning._parse_level("95.5%") == pytest.approx(0.955)
    assert planning._parse_level("1.2亿") == 120_000_000
    assert planning._parse_level("  ") is None


# --- Saving: versions dated, past periods unchanged ------------------------------------------


def test_a_later_target_change_leaves_past_months_as_judged(sales_wh):
    before = {m: score(sales_wh, "SALES", m) for m in ("2024-03", "2024-06", "2024-08", "2024-12")}
    head = actor(sales_wh, "wang", "head", "SALES")
    g = grid(sales_wh, head)
    edits, problems = edit(sales_wh, g, {("SALES/REV", "target"): "6800万"})
    assert problems == []
    saved = planning.save_targets(
        sales_wh,
        load_catalog(sales_wh),
        head,
        edits,
        reason="budget up",
        effective=date(2024, 7, 15),
    )
    assert (saved.rows, saved.cells) == (1, 1)
    after = {m: score(sales_wh, "SALES", m) for m in before}
    # January to June keep the 60,000,000 year they were judged by …
    # (equal to the last few bits: with two versions the months are phased one by one)
    for m in ("2024-03", "2024-06"):
        assert after[m]["score"] == pytest.approx(before[m]["score"], rel=1e-12)
        for code, (value, status) in before[m]["kpis"].items():
            assert after[m]["kpis"][code] == (pytest.approx(value, rel=1e-12), status)
    # … from July the month's share of 68,000,000 applies.
    for m in ("2024-08", "2024-12"):
        assert after[m]["kpis"]["REV"][0] < before[m]["kpis"]["REV"][0]
    rows = sales_wh.rows(
        """SELECT version, target, valid_from, changed_by, reason FROM target t
           JOIN kpi k ON k.id = t.kpi_id JOIN org_unit u ON u.id = t.unit_id
           WHERE k.code = 'REV' AND u.code = 'SALES' ORDER BY version"""
    )
    assert rows == [
        (1, 60_000_000, date(2024, 1, 1), "test", "import sales.xlsx"),
        (2, 68_000_000, date(2024, 7, 1), "wang", "budget up"),
    ]
    # Worked by hand: August's REV is 4,833,333.33 against a baseline of 50M / 12 =
    # 4,166,666.67 and a target of 60M / 12 = 5,000,000 before: 60 + 40 × 666,666.67 /
    # 833,333.33 = 92; after, 68M / 12 = 5,666,666.67: 60 + 40 × 666,666.67 / 1,500,000 = 77.78.
    assert before["2024-08"]["kpis"]["REV"][0] == pytest.approx(92.0)
    assert after["2024-08"]["kpis"]["REV"][0] == pytest.approx(77.7778, abs=1e-4)


def test_the_latest_decision_wins_for_the_months_it_covers(sales_wh):
    cat = load_catalog(sales_wh)
    for text, effective in (("6800万", date(2024, 9, 1)), ("6400万", date(2024, 4, 1))):
        g = grid(sales_wh, ADMIN)
        edits, _ = edit(sales_wh, g, {("SALES/REV", "target"): text})
        planning.save_targets(sales_wh, cat, ADMIN, edits, reason="r", effective=effective)
    levels = dict(
        sales_wh.rows(
            """SELECT version, target FROM target t JOIN kpi k ON k.id = t.kpi_id
               JOIN org_unit u ON u.id = t.unit_id WHERE k.code = 'REV' AND u.code = 'SALES'"""
        )
    )
    assert levels == {1: 60e6, 2: 68e6, 3: 64e6}
    from kpi_core import targets

    rev, sales = cat.kpi("REV"), cat.unit("SALES")
    rows = targets.fetch(sales_wh, [(rev.id, sales.id)], [2024])[(rev.id, sales.id)]
    by_month = {
        m: targets.month_levels(rows, rev, date(2024, m, 1), cat).target * 12 for m in (3, 5, 10)
    }
    # March: the original; May: v3 (from April); October: v3 too — decided after v2 (from
    # September), so it replaces it.
    assert by_month == pytest.approx({3: 60e6, 5: 64e6, 10: 64e6})


def test_weights_change_from_their_date_only(sales_wh):
    before = {m: score(sales_wh, "SALES", m) for m in ("2024-05", "2024-09")}
    head = actor(sales_wh, "wang", "head", "SALES")
    cat = load_catalog(sales_wh)
    base = planning.weight_grid(cat, head, cat.unit("SALES").id, "en", date(2024, 12, 1))
    edited = base.copy()
    new = {"SALES/REV": 55.0, "SALES/NEW_CUST": 10.0}
    for child, w in new.items():
        edited.loc[(base["parent"] == "SALES") & (base["child"] == child), "weight"] = w
    edits, problems = planning.weight_edits(base, edited)
    assert problems == [] and [e.parent for e in edits] == ["SALES"]
    saved = planning.save_weights(
        sales_wh, cat, head, edits, reason="focus on revenue", effective=date(2024, 7, 1)
    )
    assert (saved.rows, saved.cells) == (1, 2)
    after = {m: score(sales_wh, "SALES", m) for m in before}
    assert after["2024-05"] == before["2024-05"]
    assert after["2024-09"]["score"] != pytest.approx(before["2024-09"]["score"])
    tree = load_catalog(sales_wh).tree
    sales = cat.unit("SALES").id
    weights = {m: [w for _, w in tree(date(2024, m, 1))[(sales, SCORECARD)]] for m in (6, 7)}
    assert weights == {6: [40, 25, 20, 15], 7: [55, 10, 20, 15]}
    hist = planning.weight_history(sales_wh, cat, head, sales, cat.kpi("REV").id)
    assert list(hist["change"]) == ["40% → 55%", "40%"]
    assert hist.loc[0, "reason"] == "focus on revenue"


def test_weights_month_is_today_within_the_year():
    today = date(2026, 11, 20)
    assert planning.weights_month(2026, today) == date(2026, 11, 1)
    assert planning.weights_month(2025, today) == date(2025, 12, 1)
    assert planning.weights_month(2027, today) == date(2027, 1, 1)


def test_the_weights_in_force_are_shown_and_later_versions_apart(sales_wh):
    cat = load_catalog(sales_wh)
    sales = cat.unit("SALES").id

    def save(weights: list[float], effective: date, reason: str) -> None:
        c = load_catalog(sales_wh)
        base = planning.weight_grid(c, ADMIN, sales, "en", effective)
        edited = base.copy()
        edited.loc[base.index[base["parent"] == "SALES"], "weight"] = weights
        edits, problems = planning.weight_edits(base, edited)
        assert problems == []
        planning.save_weights(sales_wh, c, ADMIN, edits, reason=reason, effective=effective)

    save([45, 20, 20, 15], date(2025, 1, 1), "plan for 2025")
    cat = load_catalog(sales_wh)

    def weights(g: pd.DataFrame) -> list[float]:
        return list(g.loc[g["parent"] == "SALES", "weight"])

    # In 2024 the 2025 plan is not the present: the grid has what judges December 2024.
    now = planning.weight_grid(cat, ADMIN, sales, "zh", date(2024, 12, 1))
    assert weights(now) == [40, 25, 20, 15]
    assert set(now.loc[now["parent"] == "SALES", "version"]) == {1}
    assert set(now.loc[now["parent"] == "SALES", "latest_version"]) == {2}
    later = planning.scheduled_weights(cat, ADMIN, sales, "zh", date(2024, 12, 1))
    assert list(later["parent"].unique()) == ["SALES"]
    assert weights(later) == [45, 20, 20, 15]
    assert set(later["valid_from"]) == {date(2025, 1, 1)}
    assert list(later["child_label"]) == ["营业收入", "新客户数", "客户满意度", "回款率"]
    # From January 2025 it is the present, and nothing is scheduled any more.
    assert weights(planning.weight_grid(cat, ADMIN, sales, "en", date(2025, 3, 1))) == [
        45, 20, 20, 15
    ]  # fmt: skip
    assert planning.scheduled_weights(cat, ADMIN, sales, "en", date(2025, 1, 1)).empty
    # An edit of the weights in force is saved over the newest version (no false conflict),
    # and it is the latest decision: it holds from its month on.
    save([50, 20, 15, 15], date(2024, 12, 1), "December")
    cat = load_catalog(sales_wh)
    assert weights(planning.weight_grid(cat, ADMIN, sales, "en", date(2024, 12, 1))) == [
        50, 20, 15, 15
    ]  # fmt: skip
    # The 2025 plan is overridden by that later decision: it never takes effect, so it is
    # not listed as scheduled.
    assert planning.scheduled_weights(cat, ADMIN, sales, "en", date(2024, 12, 1)).empty


def test_weight_changes_old_to_new_by_name(sales_wh):
    cat = load_catalog(sales_wh)
    base = planning.weight_grid(cat, ADMIN, cat.unit("SALES").id, "zh", date(2024, 12, 1))
    edited = base.copy()
    rows = base.index[base["parent"] == "SALES"]
    edited.loc[rows[:2], "weight"] = [45.0, float("nan")]
    got = planning.weight_changes(base, edited)
    assert got[["row", "parent_name", "child_label", "old"]].values.tolist() == [
        [rows[0], "销售部", "营业收入", 40.0],
        [rows[1], "销售部", "新客户数", 25.0],
    ]
    assert got["new"].iloc[0] == 45 and pd.isna(got["new"].iloc[1])


def test_weight_sum_message_in_both_languages(sales_wh):
    cat = load_catalog(sales_wh)
    for lang, english, chinese in [
        (
            "en",
            "Sales: weights of Revenue, New customers, Customer satisfaction, Collection rate "
            "sum to 105, not 100",
            None,
        ),
        (
            "zh",
            "销售部: weights of 营业收入, 新客户数, 客户满意度, 回款率 sum to 105, not 100",
            "销售部：营业收入、新客户数、客户满意度、回款率的权重合计为 105，应为 100",
        ),
    ]:
        base = planning.weight_grid(cat, ADMIN, cat.unit("SALES").id, lang, date(2024, 12, 1))
        edited = base.copy()
        edited.loc[base.index[base["parent"] == "SALES"], "weight"] = [45, 25, 20, 15]
        _, problems = planning.weight_edits(base, edited)
        assert [str(p.message) for p in problems] == [english]
        assert problems[0].message.render("en") == english
        if chinese:
            assert problems[0].message.render("zh") == chinese
        # The regional split under the department's revenue: unit and KPI, as people say it.
        edited = base.copy()
        edited.loc[base.index[base["parent"] == "SALES/REV"], "weight"] = [70, 40]
        _, problems = planning.weight_edits(base, edited)
        region = {"en": "East region · Revenue, North region · Revenue",
                  "zh": "华东大区 · 营业收入, 华北大区 · 营业收入"}[lang]  # fmt: skip
        assert (
            str(problems[0].message).split(": ", 1)[1].startswith(f"weights of {region} sum to 110")
        )
    with pytest.raises(ValidationError) as exc:
        planning.save_weight_grid(sales_wh, cat, ADMIN, base, edited, reason="r",
                                  effective=date(2024, 12, 1))  # fmt: skip
    assert exc.value.problems[0].message.render("zh") == (
        "销售部 · 营业收入：华东大区 · 营业收入、华北大区 · 营业收入的权重合计为 110，应为 100"
    )


# --- Bad input: refused at the cell, nothing partial saved ------------------------------------


@pytest.mark.parametrize(
    ("code", "column", "text", "expected"),
    [
        ("SALES/CSAT", "target", "lots", "'lots' is not a number"),
        (
            "SALES/NEW_CUST",
            "challenge",
            "55",
            "challenge 55 is below target 60 for a KPI where higher is better",
        ),
        ("SALES/COLLECT_RATE", "target", "96", "did you mean 96%?"),
        ("SALES/REV", "target", "", "is empty — every target row needs a target value"),
    ],
)
def test_a_bad_cell_is_refused_with_its_reason(sales_wh, code, column, text, expected):
    head = actor(sales_wh, "wang", "head", "SALES")
    g = grid(sales_wh, head)
    good = {("SALES/CSAT", "baseline"): "80"} if code != "SALES/CSAT" else {}
    edits, problems = edit(sales_wh, g, {(code, column): text, **good})
    cat = load_catalog(sales_wh)
    problems += planning.check_targets(sales_wh, cat, head, edits, date(2024, 7, 1))
    # Every problem is at the bad row; the expected one at the cell typed into.
    assert {(p.row, p.where) for p in problems} == {(row_of(g, code), f"{code} 2024")}
    assert any(p.column == column and expected in str(p.message) for p in problems)
    n = target_rows(sales_wh)
    if edits:
        with pytest.raises(ValidationError):
            planning.save_targets(
                sales_wh, cat, head, edits, reason="r", effective=date(2024, 7, 1)
            )
    assert target_rows(sales_wh) == n  # the good row was not saved either


def test_down_kpi_levels_must_descend(sales_wh):
    g = grid(sales_wh, ADMIN, unit="PROD")
    edits, _ = edit(sales_wh, g, {("PROD/COMPLAINT", "challenge"): "3%"})
    problems = planning.check_targets(
        sales_wh, load_catalog(sales_wh), ADMIN, edits, date(2024, 7, 1)
    )
    assert [p.column for p in problems] == ["challenge"]
    assert str(problems[0].message) == (
        "challenge 3% is above target 1% for a KPI where lower is better — the challenge must "
        "be at or below the target"
    )


def test_reason_and_effective_date_are_required(sales_wh):
    g = grid(sales_wh, ADMIN)
    edits, _ = edit(sales_wh, g, {("SALES/REV", "target"): "6500万"})
    cat = load_catalog(sales_wh)
    with pytest.raises(ValidationError) as exc:
        planning.save_targets(sales_wh, cat, ADMIN, edits, reason="  ", effective=None)
    assert [p.column for p in exc.value.problems] == ["effective", "reason"]


def test_an_effective_date_inside_a_closed_period_is_refused(sales_wh):
    month_locks.lock_month(sales_wh, date(2024, 8, 1), ADMIN)
    cat = load_catalog(sales_wh)
    g = grid(sales_wh, ADMIN)
    edits, _ = edit(sales_wh, g, {("SALES/REV", "target"): "6500万"})
    problems = planning.check_targets(sales_wh, cat, ADMIN, edits, date(2024, 7, 1))
    assert [p.column for p in problems] == ["valid_from"]
    assert str(problems[0].message).startswith("2024-08 is closed")
    assert planning.check_targets(sales_wh, cat, ADMIN, edits, date(2024, 9, 1)) == []
    # Weights: a new set from July would re-judge the closed August too.
    base = planning.weight_grid(cat, ADMIN, cat.unit("SALES").id, "en", date(2024, 12, 1))
    edited = base.copy()
    edited.loc[[0, 1], "weight"] = [45.0, 20.0]
    wedits, _ = planning.weight_edits(base, edited)
    assert [
        str(p.message)[:17]
        for p in planning.check_weights(sales_wh, ADMIN, wedits, date(2024, 7, 1))
    ] == ["2024-08 is closed"]


def test_a_change_starting_after_its_period_is_refused(sales_wh):
    g = grid(sales_wh, ADMIN)
    edits, _ = edit(sales_wh, g, {("SALES/REV", "target"): "6500万"})
    problems = planning.check_targets(
        sales_wh, load_catalog(sales_wh), ADMIN, edits, date(2025, 2, 1)
    )
    assert "after 2024 ends, and never be used" in str(problems[0].message)


@pytest.mark.parametrize(
    ("weights", "expected"),
    [
        (
            [40, 25, 20, 10],
            "Sales: weights of Revenue, New customers, Customer satisfaction, Collection rate "
            "sum to 95, not 100",
        ),
        ([50, 35, 20, -5], "-5 — a weight cannot be negative"),
        ([40, 25, 20, None], "is empty — give a weight (0 for none)"),
    ],
)
def test_bad_weights_are_refused_at_the_cell(sales_wh, weights, expected):
    cat = load_catalog(sales_wh)
    base = planning.weight_grid(cat, ADMIN, cat.unit("SALES").id, "en", date(2024, 12, 1))
    edited = base.copy()
    rows = base.index[base["parent"] == "SALES"]
    edited.loc[rows, "weight"] = [float("nan") if w is None else w for w in weights]
    edits, problems = planning.weight_edits(base, edited)
    assert edits == []
    assert [(p.row, str(p.message)) for p in problems] == [(rows[-1], expected)]
    if None in weights or min(weights) < 0:  # the cell is named as people know it
        assert problems[0].where == "Sales → Collection rate"
    sums = planning.weight_sums(edited).set_index("parent")
    assert sums.at["SALES", "ok"] == (sum(w or 0 for w in weights) == 100)
    assert sums.at["SALES/REV", "ok"]


# --- Two editors at once ---------------------------------------------------------------------


def test_the_second_save_of_the_same_cells_is_refused_and_nothing_is_lost(sales_wh):
    cat = load_catalog(sales_wh)
    wang = actor(sales_wh, "wang", "head", "SALES")
    li = actor(sales_wh, "li", "admin")
    # Both open the grid before either saves.
    g_wang, g_li = grid(sales_wh, wang), grid(sales_wh, li)
    e_wang, _ = edit(sales_wh, g_wang, {("SALES/REV", "target"): "6500万"})
    e_li, _ = edit(
        sales_wh, g_li, {("SALES/REV", "challenge"): "9000万", ("SALES/CSAT", "target"): "91"}
    )
    planning.save_targets(sales_wh, cat, wang, e_wang, reason="wang's", effective=date(2024, 7, 1))
    with pytest.raises(planning.ConflictError) as exc:
        planning.save_targets(sales_wh, cat, li, e_li, reason="li's", effective=date(2024, 7, 1))
    (c,) = exc.value.conflicts
    assert (c.where, c.by) == ("SALES/REV 2024", "wang")
    assert "SALES/REV 2024 was changed by wang at " in str(exc.value)
    assert "reload to see it" in str(exc.value)
    # A Chinese page says it in Chinese (coded, one line a conflict), the time as the core wrote it.
    when = f"{c.at:%Y-%m-%d %H:%M}"
    assert exc.value.text("zh") == (
        f"SALES/REV 2024 已被 wang 于 {when} 修改——请重新加载查看；您的改动会被保留"
    )
    assert str(exc.value) == (
        f"SALES/REV 2024 was changed by wang at {when} — reload to see it; your edits are kept"
    )
    # Nothing of li's save was written — not even the CSAT row nobody else touched.
    assert sales_wh.one("SELECT count(*) FROM target WHERE changed_by = 'li'")[0] == 0
    # li reloads: wang's target is there, and li's edits carried over save cleanly.
    fresh = grid(sales_wh, li)
    assert fresh.loc[row_of(fresh, "SALES/REV"), "target"] == "65,000,000"
    e_li2, _ = edit(
        sales_wh, fresh, {("SALES/REV", "challenge"): "9000万", ("SALES/CSAT", "target"): "91"}
    )
    planning.save_targets(sales_wh, cat, li, e_li2, reason="li's", effective=date(2024, 7, 1))
    latest = grid(sales_wh, li)
    rev = latest.loc[row_of(latest, "SALES/REV")]
    assert (rev["target"], rev["challenge"], rev["version"]) == ("65,000,000", "90,000,000", 3)


def test_two_editors_of_one_parent_s_weights(sales_wh):
    cat = load_catalog(sales_wh)
    base = planning.weight_grid(cat, ADMIN, cat.unit("SALES").id, "en", date(2024, 12, 1))
    first, second = base.copy(), base.copy()
    first.loc[[0, 1], "weight"] = [45.0, 20.0]
    second.loc[[0, 1], "weight"] = [30.0, 35.0]
    planning.save_weights(sales_wh, cat, ADMIN, planning.weight_edits(base, first)[0],
                          reason="one", effective=date(2024, 7, 1))  # fmt: skip
    with pytest.raises(planning.ConflictError, match="Sales was changed by system"):
        planning.save_weights(sales_wh, cat, ADMIN, planning.weight_edits(base, second)[0],
                              reason="two", effective=date(2024, 7, 1))  # fmt: skip


# --- Scope ---------------------------------------------------------------------------------------


def test_a_head_edits_only_their_units(sales_wh):
    cat = load_catalog(sales_wh)
    head = actor(sales_wh, "wang", "head", "SALES")
    with pytest.raises(ScopeError):
        grid(sales_wh, head, unit="PROD")
    # An edit of PROD made up by hand (not from the head's grid) is refused in the core.
    g = grid(sales_wh, ADMIN, unit="PROD")
    edits, _ = edit(sales_wh, g, {("PROD/OEE", "target"): "70%"})
    problems = planning.check_targets(sales_wh, cat, head, edits, date(2024, 7, 1))
    assert [(p.column, str(p.message)) for p in problems] == [
        ("unit", "outside your scope — you can read it, not change it")
    ]
    with pytest.raises(ValidationError):
        planning.save_targets(sales_wh, cat, head, edits, reason="r", effective=date(2024, 7, 1))
    # Weights of the company above the head's department are not theirs either.
    base = planning.weight_grid(cat, ADMIN, cat.unit("CO").id, "en", date(2024, 12, 1))
    edited = base.copy()
    edited.loc[(base["parent"] == "CO"), "weight"] = [50.0, 50.0]
    wedits, _ = planning.weight_edits(base, edited)
    assert planning.check_weights(sales_wh, head, wedits, date(2024, 7, 1))[0].column == "parent"


def test_viewers_and_analysts_read_only(sales_wh):
    cat = load_catalog(sales_wh)
    viewer = actor(sales_wh, "zhao", "viewer", "SALES")
    g = grid(sales_wh, viewer)
    assert not g["editable"].any()
    edits, _ = edit(sales_wh, g, {("SALES/REV", "target"): "6500万"})
    for who in (viewer, actor(sales_wh, "li", "analyst", "SALES")):
        with pytest.raises(ScopeError, match="Only department heads and admins"):
            planning.save_targets(sales_wh, cat, who, edits, reason="r", effective=date(2024, 7, 1))


# --- History, revert, audit ---------------------------------------------------------------------


def test_history_and_a_revert_that_is_itself_a_version(sales_wh):
    cat = load_catalog(sales_wh)
    head = actor(sales_wh, "wang", "head", "SALES")
    g = grid(sales_wh, head)
    edits, _ = edit(
        sales_wh, g, {("SALES/REV", "target"): "6500万", ("SALES/REV", "challenge"): "8000万"}
    )
    planning.save_targets(sales_wh, cat, head, edits, reason="stretch", effective=date(2024, 7, 1))
    rev, sales = cat.kpi("REV").id, cat.unit("SALES").id
    edit_back = target_history.revert_edit(sales_wh, cat, rev, sales, "Y", date(2024, 1, 1), 1)
    assert edit_back.changed == ("target", "challenge") and edit_back.expected_version == 2
    planning.save_targets(
        sales_wh, cat, head, [edit_back], reason="undo", effective=date(2024, 10, 1)
    )
    hist = target_history.target_history(sales_wh, cat, head, rev, sales)
    assert list(hist["version"]) == [3, 2, 1]
    assert list(hist["reason"]) == ["undo", "stretch", "import sales.xlsx"]
    assert (
        hist.loc[1, "change"] == "target 60,000,000 → 65,000,000; challenge 70,000,000 → 80,000,000"
    )
    assert (
        hist.loc[0, "change"] == "target 65,000,000 → 60,000,000; challenge 80,000,000 → 70,000,000"
    )
    assert list(hist["valid_from"]) == [date(2024, 10, 1), date(2024, 7, 1), date(2024, 1, 1)]
    zh = target_history.target_history(sales_wh, cat, head, rev, sales, "zh")
    assert zh.loc[1, "change"] == "目标 6000万 → 6500万; 挑战 7000万 → 8000万"
    with pytest.raises(ScopeError):
        target_history.target_history(sales_wh, cat, head, cat.kpi("OEE").id, cat.unit("PROD").id)


def test_every_saved_cell_is_in_the_audit_log(sales_wh):
    cat = load_catalog(sales_wh)
    head = actor(sales_wh, "wang", "head", "SALES")
    g = grid(sales_wh, head)
    edits, _ = edit(
        sales_wh, g, {("SALES/REV", "target"): "6500万", ("SALES/CSAT", "baseline"): "86"}
    )
    planning.save_targets(sales_wh, cat, head, edits, reason="plan B", effective=date(2024, 7, 1))
    log = audit.entries(sales_wh, cat, head, entities=["target"], users=["wang"])
    got = sorted(zip(log["key"], log["field"], log["old"], log["new"], log["reason"], strict=True))
    assert got == [
        ("SALES/CSAT/2024", "baseline", "85", "86", "plan B"),
        ("SALES/REV/2024", "target", "60000000", "65000000", "plan B"),
    ]
    # Filters: by date, and by key; a viewer of PROD sees none of SALES's rows.
    assert audit.entries(sales_wh, cat, head, start=date(2000, 1, 1), end=date(2000, 12, 31)).empty
    assert len(audit.entries(sales_wh, cat, head, entities=["target"], key_prefix="SALES/REV")) == 1
    prod = actor(sales_wh, "zhao", "viewer", "PROD")
    seen = audit.entries(sales_wh, cat, prod)
    assert not seen["key"].fillna("").str.startswith("SALES").any()
    assert set(seen["entity"]) <= {"kpi", "phasing", "target", "tree"}


def test_a_grid_with_one_bad_cell_saves_nothing(sales_wh):
    cat = load_catalog(sales_wh)
    g = grid(sales_wh, ADMIN)
    edited = g.copy()
    edited.at[row_of(g, "SALES/CSAT"), "target"] = "ninety"
    edited.at[row_of(g, "SALES/REV"), "target"] = "6500万"  # fine on its own
    n = target_rows(sales_wh)
    with pytest.raises(ValidationError) as exc:
        planning.save_target_grid(
            sales_wh, cat, ADMIN, g, edited, reason="r", effective=date(2024, 7, 1)
        )
    assert [p.column for p in exc.value.problems] == ["target"]
    assert "'ninety' is not a number" in str(exc.value.problems[0].message)
    assert target_rows(sales_wh) == n
