"""The engine on a real DuckDB file loaded from a real workbook: aggregation, targets, roll-up."""

import pytest

from kpi_core import service
from kpi_core.periods import parse_period


def card(wh, unit, period):
    return service.score_unit(wh, service.SYSTEM, unit, parse_period(period))


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
