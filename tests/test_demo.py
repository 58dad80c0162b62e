"""The demo company workbook (kpi_core.demo): shape, consistency and the stories in its numbers.

Most tests read the reference demo (the shipped workbook, ending October 2026); the last ones
build it for other days and check that it is current and tells the same stories."""

from __future__ import annotations

import re
from collections import defaultdict
from datetime import date

import pandas as pd
import pytest

from kpi_core.demo import REFERENCE_END, build_demo, demo_end, demo_months

ALLOWED_UNITS = {"元", "%", "个", "人", "天", "分", "次", "小时", "件"}
COLUMNS = {
    "kpis": [
        "code",
        "name_zh",
        "name_en",
        "unit",
        "direction",
        "aggregation",
        "numerator",
        "denominator",
        "formula",
        "perspective",
        "kind",
        "veto",
        "decimals",
        "caliber",
        "source",
        "owner",
        "min",
        "max",
    ],
    "org_units": ["code", "name_zh", "name_en", "parent", "kind"],
    "tree": ["parent", "child", "weight"],
    "targets": [
        "unit",
        "kpi",
        "period",
        "baseline",
        "target",
        "challenge",
        "phasing",
        "low",
        "high",
        "tolerance",
    ],
    "actuals": ["unit", "kpi", "period", "value"],
}
YEARS = ["2024", "2025", "2026"]
COUNT_UNITS = {"个", "人", "次", "件"}


@pytest.fixture(scope="module")
def demo() -> dict[str, pd.DataFrame]:
    return build_demo()


@pytest.fixture(scope="module")
def kpis(demo) -> dict[str, dict]:
    return {r["code"]: r for r in demo["kpis"].to_dict("records")}


@pytest.fixture(scope="module")
def parents(demo) -> dict[str, str | None]:
    return {
        r["code"]: (r["parent"] if isinstance(r["parent"], str) else None)
        for r in demo["org_units"].to_dict("records")
    }


@pytest.fixture(scope="module")
def children(demo) -> dict[str, list[tuple[str, int]]]:
    out: dict[str, list[tuple[str, int]]] = defaultdict(list)
    for r in demo["tree"].itertuples():
        out[r.parent].append((r.child, r.weight))
    return out


def _empty(x: object) -> bool:
    return x is None or (isinstance(x, float) and pd.isna(x))


def _refs(kpi: dict) -> set[str]:
    if kpi["aggregation"] == "ratio":
        return {kpi["numerator"], kpi["denominator"]}
    if kpi["aggregation"] == "formula":
        return set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", kpi["formula"]))
    return set()


def _is_descendant(unit: str, ancestor: str, parents: dict[str, str | None]) -> bool:
    u: str | None = unit
    while u is not None:
        if u == ancestor:
            return True
        u = parents[u]
    return False


def _months() -> list[str]:
    return [f"{d:%Y-%m}" for d in demo_months(REFERENCE_END)]


def test_deterministic_and_complete():
    a, b = build_demo(), build_demo()
    assert list(a) == ["kpis", "org_units", "tree", "targets", "actuals", "phasing"]
    for sheet in a:
        pd.testing.assert_frame_equal(a[sheet], b[sheet])


def test_columns_exactly(demo):
    for sheet, cols in COLUMNS.items():
        assert list(demo[sheet].columns) == cols, sheet
    assert list(demo["phasing"].columns) == ["name", *[f"m{i}" for i in range(1, 13)]]


def test_org_units(demo, parents):
    org = demo["org_units"]
    assert org["code"].is_unique
    roots = [c for c, p in parents.items() if p is None]
    assert len(roots) == 1
    assert org.set_index("code").loc[roots[0], "kind"] == "company"
    assert all(p is None or p in parents for p in parents.values())
    departments = set(org.loc[org["kind"] == "department", "code"])
    assert len(departments) >= 6
    assert {"SALES", "PROD", "QA", "CS", "RD", "HR"} <= departments
    assert set(org["kind"]) <= {"company", "department", "team", "position"}
    third_level = [c for c, p in parents.items() if p is not None and parents[p] is not None]
    assert {"SALES_E", "SALES_N", "SALES_S", "PROD_L1", "PROD_L2"} <= set(third_level)
    for col in ("name_zh", "name_en"):
        assert org[col].str.len().gt(1).all()


def test_kpi_library(demo, kpis):
    lib = demo["kpis"]
    assert lib["code"].is_unique
    assert len(lib) >= 40
    assert all(re.fullmatch(r"[A-Z][A-Z0-9_]*", c) for c in lib["code"])
    assert set(lib["direction"]) == {"up", "down", "range"}
    assert set(lib["aggregation"]) == {"sum", "avg", "last", "ratio", "formula"}
    assert set(lib["unit"]) <= ALLOWED_UNITS
    assert set(lib["perspective"]) <= {"financial", "customer", "process", "learning"}
    assert set(lib["kind"]) <= {"result", "process"}
    assert lib["veto"].dtype == bool
    assert set(lib["decimals"]) <= {0, 1, 2}
    for k in kpis.values():
        assert re.search(r"[\u4e00-\u9fff]", k["caliber"]), k["code"]
        assert re.search(r"[\u4e00-\u9fff]", k["name_zh"]), k["code"]
        assert k["source"] and k["owner"] and "（" in k["owner"], k["code"]
        if k["unit"] == "%":
            assert (k["min"], k["max"]) == (0.0, 1.0) or k["max"] > 1, k["code"]
    oee = kpis["OEE"]
    assert oee["aggregation"] == "formula"
    assert oee["formula"].replace(" ", "") == "AVAIL*PERF*QUAL"
    assert kpis["COLLECT_RATE"]["numerator"] == "COLLECTED"
    assert kpis["COLLECT_RATE"]["denominator"] == "RECEIVABLE"
    assert kpis["HEADCOUNT"]["aggregation"] == "last"
    safety = kpis["SAFETY"]
    assert safety["veto"] and safety["direction"] == "down" and safety["aggregation"] == "sum"
    assert safety["unit"] == "次"


def test_ratio_and_formula_references(demo, kpis):
    stored = demo["actuals"].groupby("kpi")["unit"].apply(set).to_dict()
    for k in kpis.values():
        refs = _refs(k)
        if k["aggregation"] in ("ratio", "formula"):
            assert refs and refs <= set(kpis), k["code"]
            assert k["code"] not in stored, f"{k['code']} is computed, it must have no actuals"
        else:
            assert all(_empty(k[c]) for c in ("numerator", "denominator", "formula")), k["code"]
        if k["aggregation"] == "ratio":
            num, den = kpis[k["numerator"]], kpis[k["denominator"]]
            assert num["aggregation"] == den["aggregation"] == "sum", k["code"]
            assert stored[num["code"]] == stored[den["code"]], k["code"]
        if k["aggregation"] == "formula":
            assert all(kpis[r]["aggregation"] in ("avg", "sum", "last") for r in refs)


def test_every_kpi_is_used(demo, kpis):
    in_tree = {n.split("/")[1] for n in demo["tree"]["child"] if "/" in n}
    used = set(in_tree)
    for code in in_tree:
        used |= _refs(kpis[code])
    assert used == set(kpis)


def test_tree_weights_and_nodes(demo, kpis, parents, children):
    tree = demo["tree"]
    assert not tree.duplicated(["parent", "child"]).any()
    for parent, kids in children.items():
        assert sum(w for _, w in kids) == 100, parent
        assert all(w >= 0 for _, w in kids), parent
    child_nodes = set(tree["child"])
    for node in set(tree["parent"]) | child_nodes:
        unit, _, kpi = node.partition("/")
        assert unit in parents, node
        assert not kpi or kpi in kpis, node
    for r in tree.itertuples():
        p_unit, c_unit = r.parent.split("/")[0], r.child.split("/")[0]
        assert _is_descendant(c_unit, p_unit, parents), (r.parent, r.child)
        if "/" not in r.parent and "/" not in r.child:
            assert parents[c_unit] == p_unit, (r.parent, r.child)  # child units' scorecards
        if "/" in r.parent:
            assert "/" in r.child, "a KPI node decomposes into KPI nodes"
    # one root: the company's scorecard; every node reachable from it
    root = next(c for c, p in parents.items() if p is None)
    assert set(tree["parent"]) - child_nodes == {root}
    seen, stack = set(), [root]
    while stack:
        node = stack.pop()
        seen.add(node)
        stack.extend(c for c, _ in children.get(node, []))
    assert child_nodes <= seen
    # company score = 60% company KPIs + 40% department scorecards, 4-8 KPIs per department
    group = children[root]
    assert sum(w for c, w in group if "/" in c) == 60
    assert sum(w for c, w in group if "/" not in c) == 40
    for dept, _ in group:
        if "/" not in dept:
            own = [c for c, _ in children[dept] if "/" in c]
            assert 4 <= len(own) <= 8, dept


def test_veto_kpi_on_production(children, kpis):
    prod = dict(children["PROD"])
    assert "PROD/SAFETY" in prod
    assert any(kpis[c.split("/")[1]]["veto"] for c in prod)


def test_sales_scorecard_is_the_worked_example(demo, children):
    assert sorted(children["SALES"]) == sorted(
        [("SALES/REV", 40), ("SALES/NEW_CUST", 25), ("SALES/CSAT", 20), ("SALES/COLLECT_RATE", 15)]
    )
    assert sorted(children["SALES/REV"]) == [
        ("SALES_E/REV", 45),
        ("SALES_N/REV", 30),
        ("SALES_S/REV", 25),
    ]
    t = demo["targets"].set_index(["unit", "kpi", "period"])

    def levels(kpi: str) -> tuple[float, ...]:
        return tuple(t.loc[("SALES", kpi, "2026"), ["baseline", "target", "challenge"]])

    assert levels("REV") == (50_000_000, 60_000_000, 70_000_000)
    assert levels("NEW_CUST") == (50, 60, 70)
    assert levels("CSAT") == (85, 90, 95)
    assert levels("COLLECT_RATE") == pytest.approx((0.90, 0.95, 0.98))
    lib = demo["kpis"].set_index("code")
    assert tuple(lib.loc["REV", ["unit", "aggregation", "direction"]]) == ("元", "sum", "up")
    assert tuple(lib.loc["NEW_CUST", ["unit", "aggregation", "direction"]]) == ("个", "sum", "up")
    assert tuple(lib.loc["CSAT", ["unit", "aggregation", "direction"]]) == ("分", "avg", "up")
    assert tuple(lib.loc["COLLECT_RATE", ["unit", "aggregation"]]) == ("%", "ratio")
    # regional revenue targets add up to the department's, every year and level
    for year in YEARS:
        for col in ("baseline", "target", "challenge"):
            regions = sum(t.loc[(r, "REV", year), col] for r in ("SALES_E", "SALES_N", "SALES_S"))
            assert regions == pytest.approx(t.loc[("SALES", "REV", year), col])
    # revenue is measured at the regions only
    rev_units = set(demo["actuals"].query("kpi == 'REV'")["unit"])
    assert rev_units == {"SALES_E", "SALES_N", "SALES_S"}


def test_targets(demo, kpis):
    targets = demo["targets"]
    assert not targets.duplicated(["unit", "kpi", "period"]).any()
    profiles = set(demo["phasing"]["name"])
    nodes = {tuple(n.split("/")) for n in demo["tree"]["child"] if "/" in n}
    have = set(zip(targets["unit"], targets["kpi"], targets["period"], strict=True))
    for unit, kpi in nodes:
        for year in YEARS:
            assert (unit, kpi, year) in have, (unit, kpi, year)
    for r in targets.to_dict("records"):
        k = kpis[r["kpi"]]
        key = (r["unit"], r["kpi"], r["period"])
        if k["aggregation"] == "sum":
            assert r["phasing"] == "even" or r["phasing"] in profiles, key
        else:
            assert _empty(r["phasing"]), key
        if k["direction"] == "range":
            assert all(_empty(r[c]) for c in ("baseline", "target", "challenge")), key
            assert r["low"] < r["high"] and r["tolerance"] > 0, key
            continue
        b, t, c = r["baseline"], r["target"], r["challenge"]
        assert all(_empty(r[x]) for x in ("low", "high", "tolerance")), key
        if k["direction"] == "up":
            assert b <= t <= c, key
        else:
            assert b >= t >= c, key
        if k["unit"] == "%":
            assert min(b, t, c) >= 0 and max(b, t, c) <= 1, key


def test_actuals_cover_every_month(demo, kpis):
    act = demo["actuals"]
    months = _months()
    assert len(months) >= 24 and months[-1] == "2026-10" and months[0] == "2024-01"
    assert not act.duplicated(["unit", "kpi", "period"]).any()
    assert act["value"].notna().all()
    for (unit, kpi), periods in act.groupby(["unit", "kpi"])["period"]:
        assert sorted(periods) == months, (unit, kpi)
        assert kpis[kpi]["aggregation"] in ("sum", "avg", "last")
    for r in act.itertuples():
        k = kpis[r.kpi]
        if k["unit"] == "%":  # fractions: 0.96 is 96%; only budget utilisation may pass 100%
            assert 0 <= r.value <= (1 if r.kpi != "BUDGET_UTIL" else 1.5), r
        if k["unit"] in COUNT_UNITS:
            assert r.value == int(r.value) and r.value >= 0, r
        if not _empty(k["min"]):
            assert r.value >= k["min"], r
        if not _empty(k["max"]):
            assert r.value <= k["max"], r


def test_every_tree_node_has_data(demo, kpis, parents):
    stored = set(zip(demo["actuals"]["unit"], demo["actuals"]["kpi"], strict=True))
    kids: dict[str, list[str]] = defaultdict(list)
    for c, p in parents.items():
        if p is not None:
            kids[p].append(c)

    def has_data(unit: str, kpi: str) -> bool:
        k = kpis[kpi]
        if k["aggregation"] in ("ratio", "formula"):
            return all(has_data(unit, r) for r in _refs(k))
        return (unit, kpi) in stored or any(has_data(c, kpi) for c in kids[unit])

    for node in demo["tree"]["child"]:
        if "/" in node:
            assert has_data(*node.split("/")), node


def test_safety_veto_fires_once(demo):
    safety = demo["actuals"].query("kpi == 'SAFETY'")
    incidents = safety[safety["value"] > 0]
    assert len(incidents) == 1
    assert incidents.iloc[0]["period"] == "2025-08"
    assert incidents.iloc[0]["value"] == 1
    t = demo["targets"].query("unit == 'PROD' and kpi == 'SAFETY'")
    assert (t[["baseline", "target", "challenge"]] == 0).all().all()


def test_seasonality_and_calibration(demo):
    act = demo["actuals"]
    profile = demo["phasing"].set_index("name").loc["sales_season"]
    assert profile["m2"] == profile.min() and profile["m12"] == profile.max()
    rev = act[act["kpi"] == "REV"].groupby("period")["value"].sum()
    for year in ("2024", "2025"):
        months = rev[rev.index.str.startswith(year)]
        assert months[f"{year}-02"] == months.min() and months[f"{year}-12"] == months.max()
    t = demo["targets"].set_index(["unit", "kpi", "period"])
    year_total = rev[rev.index.str.startswith("2025")].sum()
    assert year_total == pytest.approx(t.loc[("GROUP", "REV", "2025"), "target"], rel=0.05)
    assert rev[rev.index.str.startswith("2025")].sum() > rev[rev.index.str.startswith("2024")].sum()
    # the South region lags in 2026: year-to-date revenue below its phased baseline
    shares = profile.to_numpy(dtype=float)
    ytd_share = shares[:10].sum() / shares.sum()
    south = act.query("unit == 'SALES_S' and kpi == 'REV' and period.str.startswith('2026')")
    assert south["value"].sum() < t.loc[("SALES_S", "REV", "2026"), "baseline"] * ytd_share


def test_deliberate_misses(demo):
    act = demo["actuals"]
    t = demo["targets"].set_index(["unit", "kpi", "period"])

    def total(kpi: str, prefix: str) -> float:
        return act[(act["kpi"] == kpi) & act["period"].str.startswith(prefix)]["value"].sum()

    # complaint rate (Σ complaints / Σ deliveries) worsens in 2026, red in the latest month
    rate = {p: total("COMPLAINTS", p) / total("DELIVERIES", p) for p in ("2025", "2026", "2026-10")}
    assert rate["2026"] > rate["2025"] * 1.2
    assert rate["2026-10"] > t.loc[("CS", "COMPLAINT_RATE", "2026"), "baseline"]
    # R&D milestone on-time rate below baseline in 2026 (red)
    rd = act.query("kpi == 'PROJ_ONTIME' and period.str.startswith('2026')")["value"].mean()
    assert rd < t.loc[("RD", "PROJ_ONTIME", "2026"), "baseline"]
    # HR turnover between target and baseline in 2026 (amber)
    hr = act.query("kpi == 'TURNOVER' and period.str.startswith('2026')")["value"].mean()
    levels = t.loc[("HR", "TURNOVER", "2026")]
    assert levels["target"] < hr <= levels["baseline"]


# Days a calendar makes awkward: a month end, the first days of a month, New Year, a leap day.
DAYS = [
    date(2026, 11, 30), date(2026, 12, 1), date(2026, 12, 2), date(2027, 1, 1), date(2027, 1, 31),
    date(2027, 3, 15), date(2028, 1, 2), date(2028, 2, 29), date(2028, 3, 1), date(2031, 7, 4),
]  # fmt: skip


@pytest.mark.parametrize("today", DAYS, ids=str)
def test_the_demo_is_current_whatever_the_day(today):
    end = demo_end(today)
    last_month = (
        date(today.year - 1, 12, 1) if today.month == 1 else date(today.year, today.month - 1, 1)
    )
    assert end == last_month
    d = build_demo(end)
    act, t = d["actuals"], d["targets"]
    months = sorted(act["period"].unique())
    assert len(months) == 34 and months[-1] == f"{end:%Y-%m}"
    # every year shown has its targets, for every KPI node of the tree
    nodes = {tuple(n.split("/")) for n in d["tree"]["child"] if "/" in n}
    have = set(zip(t["unit"], t["kpi"], t["period"], strict=True))
    for year in {m[:4] for m in months}:
        for unit, kpi in nodes:
            assert (unit, kpi, year) in have, (unit, kpi, year)
    # the veto incident: once, 14 months before the last month
    incidents = act.query("kpi == 'SAFETY' and value > 0")
    assert list(incidents["period"]) == [months[-1 - 14]]
    # the worked sales example is the running year's scorecard
    sales = t.set_index(["unit", "kpi", "period"])
    year = str(end.year)
    for kpi, levels in {"REV": (50e6, 60e6, 70e6), "NEW_CUST": (50, 60, 70), "CSAT": (85, 90, 95),
                        "COLLECT_RATE": (0.90, 0.95, 0.98)}.items():  # fmt: skip
        got = tuple(sales.loc[("SALES", kpi, year), ["baseline", "target", "challenge"]])
        assert got == pytest.approx(levels), kpi
    # seasonality stays on the calendar: February (Spring Festival) is the weakest revenue month
    rev = act.query("kpi == 'REV'").groupby("period")["value"].sum()
    for feb in (m for m in months if m.endswith("-02")):
        year_months = [m for m in months if m[:4] == feb[:4]]
        assert rev[feb] == min(rev[m] for m in year_months), feb


def test_the_reference_day_gives_the_shipped_workbooks_months():
    assert demo_end(date(2026, 11, 20)) == REFERENCE_END
    assert demo_months()[0] == date(2024, 1, 1) and demo_months()[-1] == REFERENCE_END
