"""The engine on a real DuckDB file loaded from a real workbook: aggregation, targets, roll-up."""

from datetime import date

import numpy as np
import pandas as pd
import pytest

from kpi_core import access, service, targets, workbook
from kpi_core.access import Scope
from kpi_core.catalog import load_catalog
from kpi_core.periods import parse_period
from kpi_core.system_import import import_system

BOTH_ENGINES = True  # the file and PostgreSQL (tests/conftest.py)


def card(wh, unit, period):
    return service.score_unit(wh, access.SYSTEM, unit, parse_period(period))


def kpi(c, code):
    return next(k for k in c["kpis"] if k["kpi"] == code)


def test_worked_example_over_the_year(sales_wh):
    c = card(sales_wh, "SALES", "2024")
    # Revenue: regions give 2.9M + 1.9333M a month → 58M over the year (SALES has no own actual).
    assert kpi(c, "REV")["actual"] == pytest.approx(58_000_000)
    assert kpi(c, "REV")["target"] == pytest.approx(60_000_000)
    assert kpi(c, "REV")["score"] == pytest.approx(92.0)
    assert kpi(c, "NEW_CUST")["actual"] == pytest.approx(66)
    assert kpi(c, "NEW_CUST")["score"] == pytest.approx(112.0)
    assert kpi(c, "CSAT")["actual"] == pytest.approx(88)  # avg over months, not a sum
    assert kpi(c, "CSAT")["score"] == pytest.approx(84.0)
    # Collection rate = Σ collected / Σ receivable = (6×90 + 6×200) / (6×100 + 6×200)
    # = 1740 / 1800 = 0.96667, not the mean of monthly ratios (0.95).
    assert kpi(c, "COLLECT_RATE")["actual"] == pytest.approx(1740 / 1800)
    assert kpi(c, "COLLECT_RATE")["score"] == pytest.approx(100 + 20 * (1740 / 1800 - 0.95) / 0.03)
    expected = (40 * 92 + 25 * 112 + 20 * 84 + 15 * (100 + 20 * (1740 / 1800 - 0.95) / 0.03)) / 100
    assert c["score"] == pytest.approx(expected)
    assert c["status"] == "amber"
    assert [k["weight"] for k in c["kpis"]] == [40, 25, 20, 15]


def test_ratio_over_a_quarter_is_sum_over_sum(sales_wh):
    # Q3: all months 200/200 → 1.0; Q2 spans 90/100 only → 0.9. Mixed: months 5–7 via a YTD.
    assert kpi(card(sales_wh, "SALES", "2024-Q3"), "COLLECT_RATE")["actual"] == pytest.approx(1.0)
    assert kpi(card(sales_wh, "SALES", "2024-Q2"), "COLLECT_RATE")["actual"] == pytest.approx(0.9)


def test_month_compares_with_phased_share(sales_wh):
    c = card(sales_wh, "SALES", "2024-03")
    # Even phasing: a twelfth of the annual levels.
    assert kpi(c, "REV")["target"] == pytest.approx(5_000_000)
    assert kpi(c, "REV")["baseline"] == pytest.approx(50_000_000 / 12)
    assert kpi(c, "REV")["actual"] == pytest.approx(4_833_333.3333)
    # Satisfaction is an avg KPI: annual levels hold for every month.
    assert kpi(c, "CSAT")["target"] == 90


def test_quarter_of_sum_kpi(sales_wh):
    c = card(sales_wh, "SALES", "2024-Q1")
    assert kpi(c, "REV")["actual"] == pytest.approx(14_500_000)
    assert kpi(c, "REV")["target"] == pytest.approx(15_000_000)
    assert kpi(c, "NEW_CUST")["actual"] == pytest.approx(16.5)


def test_formula_range_down_and_veto(sales_wh):
    c = card(sales_wh, "PROD", "2024-03")
    assert kpi(c, "OEE")["actual"] == pytest.approx(0.9 * 0.8 * 0.95)  # 0.684
    # 0.684 above target 0.65: 100 + 20 × 0.034 / 0.10 = 106.8
    assert kpi(c, "OEE")["score"] == pytest.approx(106.8)
    assert kpi(c, "COMPLAINT")["score"] == pytest.approx(92.0)
    assert kpi(c, "INV_DAYS")["score"] == pytest.approx(80.0)
    assert kpi(c, "SAFETY")["status"] == "green"
    # (50 × 106.8 + 20 × 92 + 30 × 80 + 0 × 100) / 100
    assert c["score"] == pytest.approx((50 * 106.8 + 20 * 92 + 30 * 80) / 100)


def test_company_rolls_up_departments(sales_wh):
    c = card(sales_wh, "CO", "2024")
    sales = next(u for u in c["units"] if u["unit"] == "SALES")
    prod = next(u for u in c["units"] if u["unit"] == "PROD")
    assert c["score"] == pytest.approx((60 * sales["score"] + 40 * prod["score"]) / 100)


def test_missing_data_is_grey_and_reduces_coverage(sales_wh):
    c = card(sales_wh, "SALES", "2025-01")
    assert c["status"] == "grey"
    assert c["score"] is None
    assert c["coverage"] == 0
    assert all(k["status"] == "grey" for k in c["kpis"])


def test_worked_example_roll_up_by_hand(sales_wh):
    # Sales 2024: revenue 5,800万 → 92; new customers 66 → 112; satisfaction 88 → 84;
    # collection 1740/1800 = 96.67% → 100 + 20 × (0.9667 − 0.95) / 0.03 = 111.11.
    # Σ = 0.40 × 92 + 0.25 × 112 + 0.20 × 84 + 0.15 × 111.11 = 36.8 + 28 + 16.8 + 16.67 = 98.27.
    c = card(sales_wh, "SALES", "2024")
    assert c["score"] == pytest.approx(98.2667, abs=1e-3)
    assert c["status"] == "amber" and c["coverage"] == 1.0


def test_roll_up_renormalises_over_children_with_data(sales_wh, tmp_path):
    # January 2025 has only revenue (regions) and new customers: satisfaction and collection
    # have no data, so their 35% drops out and the score is over the 65% that has data.
    frames = {
        "targets": pd.DataFrame(
            [
                ["SALES", "REV", "2025", 50_000_000, 60_000_000, 70_000_000, "even"],
                ["SALES", "NEW_CUST", "2025", 50, 60, 70, "even"],
                ["SALES", "CSAT", "2025", 85, 90, 95, None],
            ],
            columns=["unit", "kpi", "period", "baseline", "target", "challenge", "phasing"],
        ),
        "actuals": pd.DataFrame(
            [["EAST", "REV", "2025-01", 3_000_000], ["NORTH", "REV", "2025-01", 1_500_000],
             ["SALES", "NEW_CUST", "2025-01", 5.5]],
            columns=["unit", "kpi", "period", "value"],
        ),
    }  # fmt: skip
    path = tmp_path / "jan.xlsx"
    workbook.write(frames, path)
    import_system(sales_wh, path, by="test", scope=Scope.all())
    c = card(sales_wh, "SALES", "2025-01")
    # Revenue 4.5M against a twelfth (5M target, 4.1667M baseline): 60 + 40 × 0.3333/0.8333 = 76.
    # New customers 5.5 against 5 (challenge 5.8333): 100 + 20 × 0.5/0.8333 = 112.
    assert kpi(c, "REV")["score"] == pytest.approx(76.0)
    assert kpi(c, "NEW_CUST")["score"] == pytest.approx(112.0)
    assert c["score"] == pytest.approx((40 * 76 + 25 * 112) / 65)
    assert c["coverage"] == pytest.approx(0.65)
    assert kpi(c, "CSAT")["status"] == "grey"


def test_veto_kpi_in_red_zeroes_the_scorecard(sales_wh, tmp_path):
    frames = {
        "actuals": pd.DataFrame(
            [["PROD", "SAFETY", "2024-05", 1]], columns=["unit", "kpi", "period", "value"]
        )
    }
    path = tmp_path / "incident.xlsx"
    workbook.write(frames, path)
    import_system(sales_wh, path, by="test", scope=Scope.all())
    may = card(sales_wh, "PROD", "2024-05")
    assert may["score"] == 0 and may["status"] == "red" and may["vetoed_by"] == ["SAFETY"]
    assert kpi(may, "OEE")["status"] == "green"  # the KPIs themselves keep their lights
    company = card(sales_wh, "CO", "2024-05")
    prod = next(u for u in company["units"] if u["unit"] == "PROD")
    sales = next(u for u in company["units"] if u["unit"] == "SALES")
    assert prod["score"] == 0
    assert company["score"] == pytest.approx(60 * sales["score"] / 100)


def test_levels_by_month_follow_the_month_by_month_rule(sales_wh, tmp_path):
    """The vectorised rule (a whole upload's light changes) gives what `month_levels` gives,
    with a quarter over a year, a month over both, and a version changed mid-year."""
    extra = pd.DataFrame(
        [
            ["EAST", "REV", "2024-Q3", 8_000_000, 9_000_000, 10_000_000, "even", None],
            ["NORTH", "REV", "2024-05", 1_500_000, 1_800_000, 2_100_000, None, None],
            ["SALES", "NEW_CUST", "2024", 55, 66, 77, "even", "2024-07-01"],
        ],
        columns=["unit", "kpi", "period", "baseline", "target", "challenge", "phasing",
                 "valid_from"],
    )  # fmt: skip
    path = tmp_path / "more.xlsx"
    workbook.write({"targets": extra}, path)
    import_system(sales_wh, path, by="test", scope=Scope.all())
    cat = load_catalog(sales_wh)
    pairs = [(cat.kpi(k).id, cat.unit(u).id) for u, k in
             [("EAST", "REV"), ("NORTH", "REV"), ("SALES", "REV"), ("SALES", "NEW_CUST"),
              ("SALES", "CSAT"), ("PROD", "INV_DAYS"), ("PROD", "OEE")]]  # fmt: skip
    months = [date(2023, 12, 1)] + [date(2024, m, 1) for m in range(1, 13)] + [date(2025, 1, 1)]
    triples = [(k, u, m) for k, u in pairs for m in months]
    k, u, m = (np.array(x) for x in zip(*triples, strict=True))
    got = targets.levels_by_month(sales_wh, cat, k, u, m.astype("datetime64[D]"))
    rows = targets.fetch(sales_wh, pairs, [2023, 2024, 2025])
    for i, (kk, uu, mm) in enumerate(triples):
        want = targets.month_levels(rows.get((kk, uu), []), cat.kpis[kk], mm, cat)
        for f in targets.LEVEL_FIELDS:
            w = None if want is None else getattr(want, f)
            g = got[f][i]
            assert (w is None and np.isnan(g)) or g == pytest.approx(w), (kk, uu, mm, f)
    # Spot checks by hand: Q3 of 9M spread evenly is 3M a month; May's own row; the new version.
    at = {t: i for i, t in enumerate(triples)}
    east, north, sales = cat.unit("EAST").id, cat.unit("NORTH").id, cat.unit("SALES").id
    rev, new = cat.kpi("REV").id, cat.kpi("NEW_CUST").id
    assert got["target"][at[(rev, east, date(2024, 8, 1))]] == pytest.approx(3_000_000)
    assert got["target"][at[(rev, north, date(2024, 5, 1))]] == pytest.approx(1_800_000)
    assert got["target"][at[(new, sales, date(2024, 6, 1))]] == pytest.approx(60 / 12)
    assert got["target"][at[(new, sales, date(2024, 7, 1))]] == pytest.approx(66 / 12)
