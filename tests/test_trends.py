"""Trend data on DESIGN.md §4's sales example, numbers worked out by hand, and the charts' specs.

The example: revenue is loaded for the East (2,900,000 a month) and North (1,933,333.33) regions
only, so Sales' revenue is their sum, 4,833,333.33 a month; its 2024 levels are 50M / 60M / 70M
phased evenly, i.e. 4,166,666.67 / 5,000,000 / 5,833,333.33 a month. Collection rate is a ratio:
90 / 100 a month in January–June, 200 / 200 in July–December.
"""

import io
from datetime import date

import openpyxl
import pandas as pd
import pytest

from kpi_core import charts, review, trends, workbook
from kpi_core.access import SYSTEM, Scope
from kpi_core.catalog import load_catalog
from kpi_core.errors import ScopeError
from kpi_core.periods import months_between

# The file only, for the suite's time: tests/test_pages_pg.py runs these pages on PostgreSQL, and
# KPI_TEST_ENGINES=both runs this module on both engines (tests/conftest.py).

MONTH = 4_833_333.3333333333


@pytest.fixture
def sales(sales_wh):
    return sales_wh, load_catalog(sales_wh)


def year_2024():
    return months_between(date(2024, 1, 1), date(2024, 12, 1))


def row(frame, month: date) -> pd.Series:
    return frame.set_index("month").loc[pd.Timestamp(month)]


def test_monthly_actual_with_each_months_levels(sales):
    wh, cat = sales
    t = trends.trend(wh, cat, Scope.all(), cat.kpi("REV").id, cat.unit("SALES").id, year_2024())
    assert len(t.monthly) == 12
    june = row(t.monthly, date(2024, 6, 1))
    assert june["actual"] == pytest.approx(MONTH)
    assert june["baseline"] == pytest.approx(50_000_000 / 12)
    assert june["target"] == pytest.approx(5_000_000)
    assert june["challenge"] == pytest.approx(70_000_000 / 12)
    assert t.monthly["last_year"].isna().all()  # no 2023 data


def test_ytd_pace_against_the_phased_target(sales):
    wh, cat = sales
    t = trends.trend(wh, cat, Scope.all(), cat.kpi("REV").id, cat.unit("SALES").id, year_2024())
    june = row(t.ytd, date(2024, 6, 1))
    # Six months: 6 × 4,833,333.33 = 29,000,000 against 6/12 of each annual level.
    assert june["actual"] == pytest.approx(29_000_000)
    assert (june["baseline"], june["target"], june["challenge"]) == pytest.approx(
        (25_000_000, 30_000_000, 35_000_000)
    )
    dec = row(t.ytd, date(2024, 12, 1))
    assert dec["actual"] == pytest.approx(58_000_000) and dec["target"] == pytest.approx(60_000_000)
    jan = row(t.ytd, date(2024, 1, 1))
    assert jan["actual"] == pytest.approx(MONTH) and jan["target"] == pytest.approx(5_000_000)


def test_ytd_restarts_in_january_and_stops_where_data_stops(sales):
    wh, cat = sales
    months = months_between(date(2024, 11, 1), date(2025, 2, 1))
    t = trends.trend(wh, cat, Scope.all(), cat.kpi("REV").id, cat.unit("SALES").id, months)
    assert t.ytd["actual"].tolist()[:2] == pytest.approx([11 * MONTH, 12 * MONTH])
    assert t.ytd["actual"].iloc[2:].isna().all()  # no 2025 actuals: no YTD point


def test_last_year_is_the_same_month_a_year_before(sales):
    wh, cat = sales
    months = months_between(date(2025, 1, 1), date(2025, 3, 1))
    t = trends.trend(wh, cat, Scope.all(), cat.kpi("REV").id, cat.unit("SALES").id, months)
    assert t.monthly["last_year"].tolist() == pytest.approx([MONTH] * 3)
    assert t.monthly["actual"].isna().all() and t.monthly["target"].isna().all()
    east = trends.trend(wh, cat, Scope.all(), cat.kpi("REV").id, cat.unit("EAST").id, months)
    assert east.monthly["last_year"].tolist() == pytest.approx([2_900_000] * 3)


def test_ratio_kpi_is_sum_over_sum_never_a_mean_of_ratios(sales):
    wh, cat = sales
    rate = cat.kpi("COLLECT_RATE").id
    t = trends.trend(wh, cat, Scope.all(), rate, cat.unit("SALES").id, year_2024())
    assert row(t.monthly, date(2024, 6, 1))["actual"] == pytest.approx(0.9)
    assert row(t.monthly, date(2024, 7, 1))["actual"] == pytest.approx(1.0)
    # July YTD: (6 × 90 + 200) / (6 × 100 + 200) = 740 / 800; a mean of ratios would be 0.914.
    assert row(t.ytd, date(2024, 7, 1))["actual"] == pytest.approx(740 / 800)
    # December: 1,740 / 1,800 = 0.9667, not the mean of the twelve monthly ratios (0.95).
    dec = row(t.ytd, date(2024, 12, 1))
    assert dec["actual"] == pytest.approx(1740 / 1800)
    # A ratio's levels are not phased: the annual 90% / 95% / 98% hold for YTD.
    assert (dec["baseline"], dec["target"], dec["challenge"]) == pytest.approx((0.90, 0.95, 0.98))


def test_avg_kpi_ytd_is_the_mean_of_its_months_against_annual_levels(sales):
    wh, cat = sales
    t = trends.trend(wh, cat, Scope.all(), cat.kpi("CSAT").id, cat.unit("SALES").id, year_2024())
    may = row(t.ytd, date(2024, 5, 1))
    assert (may["actual"], may["target"]) == pytest.approx((88, 90))


def test_compare_units_ranks_siblings(sales):
    wh, cat = sales
    east, north = cat.unit("EAST").id, cat.unit("NORTH").id
    assert trends.siblings(cat, Scope.all(), east) == [east, north]
    assert trends.children(cat, Scope.all(), cat.unit("SALES").id) == [east, north]
    rows = trends.compare_units(wh, cat, Scope.all(), cat.kpi("REV").id, [north, east], year_2024())
    # East 34.8M vs 30M / 36M: 60 + 40 × 4.8 / 6 = 92; North 23.2M vs 20M / 24M: 60 + 40 × 3.2 / 4
    # = 92 too — a tie on score is broken by the value.
    assert rows["unit_id"].tolist() == [east, north]
    assert rows["actual"].tolist() == pytest.approx([34_800_000, 23_200_000])
    assert rows["score"].tolist() == pytest.approx([92, 92])
    assert rows["rank"].tolist() == [1, 2] and rows["status"].tolist() == ["amber", "amber"]
    june = trends.compare_units(
        wh, cat, Scope.all(), cat.kpi("REV").id, [east, north], [date(2024, 6, 1)]
    )
    assert june["target"].tolist() == pytest.approx([3_000_000, 2_000_000])  # one phased month


def test_compare_units_ranks_a_down_kpi_lowest_first(sales):
    wh, cat = sales
    sales_id, prod = cat.unit("SALES").id, cat.unit("PROD").id
    rows = trends.compare_units(
        wh, cat, Scope.all(), cat.kpi("COMPLAINT").id, [sales_id, prod], year_2024()
    )
    # Sales has neither a complaint rate nor its target: left out.
    assert rows["unit_id"].tolist() == [prod]


def test_scope_is_enforced(sales):
    wh, cat = sales
    prod_only = Scope(frozenset({cat.unit("PROD").id}))
    with pytest.raises(ScopeError):
        trends.trend(wh, cat, prod_only, cat.kpi("REV").id, cat.unit("SALES").id, year_2024())
    with pytest.raises(ScopeError):
        trends.compare_units(
            wh, cat, prod_only, cat.kpi("REV").id, [cat.unit("SALES").id], year_2024()
        )
    assert trends.siblings(cat, prod_only, cat.unit("PROD").id) == [cat.unit("PROD").id]


def test_tree_kpis_lists_own_kpis_then_those_below(sales):
    _, cat = sales
    pairs = trends.tree_kpis(cat, Scope.all(), cat.unit("SALES").id, date(2024, 12, 1))
    codes = [f"{cat.units[u].code}/{cat.kpis[k].code}" for k, u in pairs]
    assert codes == [
        "SALES/REV",
        "SALES/NEW_CUST",
        "SALES/CSAT",
        "SALES/COLLECT_RATE",
        "EAST/REV",
        "NORTH/REV",
    ]


def test_month_range_refuses_backwards_and_huge_ranges():
    with pytest.raises(trends.RangeError, match="ends"):
        trends.month_range(date(2024, 5, 1), date(2024, 4, 1))
    with pytest.raises(trends.RangeError, match="too long"):
        trends.month_range(date(2000, 1, 1), date(2024, 4, 1))
    assert len(trends.month_range(date(2024, 1, 1), date(2025, 12, 1))) == 24


def layer_data(spec, layer):
    return spec["datasets"][(layer.get("data") or spec["data"])["name"]]


def mark(layer) -> str:
    return layer["mark"] if isinstance(layer["mark"], str) else layer["mark"]["type"]


def test_trend_chart_has_bands_lines_and_comment_markers(sales):
    wh, cat = sales
    rev, sales_id = cat.kpi("REV").id, cat.unit("SALES").id
    months = months_between(date(2024, 7, 1), date(2025, 6, 1))
    t = trends.trend(wh, cat, Scope.all(), rev, sales_id, months)
    review.add_comment(wh, SYSTEM, rev, sales_id, date(2024, 9, 1), "<b>Big order slipped</b>")
    review.add_comment(wh, SYSTEM, rev, sales_id, date(2024, 9, 1), "Recovered in October")
    notes = review.comments(wh, cat, SYSTEM, kpi_id=rev, unit_id=sales_id)
    markers = trends.comment_markers(t.monthly, notes)
    assert len(markers) == 1 and markers.iloc[0]["n"] == 2
    assert markers.iloc[0]["y"] == pytest.approx(MONTH)  # on the line

    spec = charts.level_bands(t.monthly, cat.kpis[rev], "en", markers=markers).to_dict()
    layers = spec["layer"]
    assert [mark(x) for x in layers] == ["rect", "rect", "line", "line", "rule", "point"]
    base, stretch = layer_data(spec, layers[0]), layer_data(spec, layers[1])
    assert {r["series"] for r in base} == {"Baseline → target"}
    assert len(base) == 6  # July–December 2024; 2025 has no targets
    sep = next(r for r in base if r["label"] == "2024-09")
    assert (sep["lo"], sep["hi"]) == pytest.approx((50_000_000 / 12, 5_000_000))
    assert sep["from"] == "4.17M CNY" and sep["to"] == "5.00M CNY"
    assert layers[0]["encoding"]["y2"]["field"] == "hi"
    top = next(r for r in stretch if r["label"] == "2024-09")
    assert (top["lo"], top["hi"]) == pytest.approx((5_000_000, 70_000_000 / 12))

    last_year = layer_data(spec, layers[2])
    assert [r["label"] for r in last_year] == [f"2024-{m:02d}" for m in range(1, 7)]
    assert layers[2]["mark"]["strokeDash"] == [5, 4]
    actual = layer_data(spec, layers[3])
    assert len(actual) == 6 and actual[0]["shown"] == "4.83M CNY"
    assert actual[0]["exact"] == "4,833,333.3 CNY"
    assert {tt["field"] for tt in layers[3]["encoding"]["tooltip"]} >= {"shown", "exact", "target"}

    point = layer_data(spec, layers[5])[0]
    assert point["text"] == "system: <b>Big order slipped</b> ｜ system: Recovered in October"
    assert point["label"] == "2024-09"
    tips = {tt["field"] for tt in layers[5]["encoding"]["tooltip"]}
    assert "text" in tips and "text" in {tt["field"] for tt in layers[4]["encoding"]["tooltip"]}
    assert spec["layer"][5]["mark"]["shape"] == "diamond"
    # One legend for bands, lines and markers.
    domain = layers[0]["encoding"]["color"]["scale"]["domain"]
    assert domain == [
        "Baseline → target",
        "Target → challenge",
        "Same month last year",
        "Actual",
        "Comments",
    ]


def test_trend_chart_reads_percent_as_percent_and_money_the_chinese_way(sales):
    wh, cat = sales
    sales_id = cat.unit("SALES").id
    rate = cat.kpi("COLLECT_RATE")
    t = trends.trend(wh, cat, Scope.all(), rate.id, sales_id, year_2024())
    spec = charts.level_bands(t.monthly, rate, "en").to_dict()
    assert spec["layer"][0]["encoding"]["y"]["axis"]["format"] == "%"
    actual = layer_data(spec, spec["layer"][-1])
    assert actual[0]["shown"] == "90.0%" and actual[0]["target"] == "95.0%"

    rev = cat.kpi("REV")
    t = trends.trend(wh, cat, Scope.all(), rev.id, sales_id, year_2024())
    spec = charts.level_bands(t.ytd, rev, "zh", actual_name="年累计实际").to_dict()
    assert "万" in spec["layer"][0]["encoding"]["y"]["axis"]["labelExpr"]
    ytd = layer_data(spec, spec["layer"][-1])
    assert ytd[5]["series"] == "年累计实际"
    assert ytd[5]["shown"] == "2,900万元" and ytd[5]["target"] == "3,000万元"


def test_range_kpi_draws_its_green_band(sales):
    wh, cat = sales
    inv = cat.kpi("INV_DAYS")
    t = trends.trend(wh, cat, Scope.all(), inv.id, cat.unit("PROD").id, year_2024())
    spec = charts.level_bands(t.monthly, inv, "en").to_dict()
    band = spec["layer"][0]
    assert mark(band) == "rect"
    first = layer_data(spec, band)[0]
    assert (first["lo"], first["hi"], first["series"]) == (25, 35, "Green band (low – high)")


def test_unit_comparison_chart(sales):
    wh, cat = sales
    east, north = cat.unit("EAST").id, cat.unit("NORTH").id
    rev = cat.kpi("REV")
    rows = trends.compare_units(wh, cat, Scope.all(), rev.id, [east, north], year_2024())
    spec = charts.unit_comparison(rows, rev, cat, "zh", selected=north).to_dict()
    bars = spec["layer"][0]
    data = layer_data(spec, bars)
    assert [r["unit"] for r in data] == ["华东大区", "华北大区"]
    assert [r["selected"] for r in data] == [False, True]
    assert data[0]["label"] == "3,480万元 ▲" and data[0]["target"] == 36_000_000
    assert mark(spec["layer"][1]) == "tick"
    assert bars["encoding"]["y"]["sort"] == ["华东大区", "华北大区"]


def test_download_table_and_images(sales):
    wh, cat = sales
    rev, sales_id = cat.kpi("REV").id, cat.unit("SALES").id
    t = trends.trend(wh, cat, Scope.all(), rev, sales_id, year_2024())
    review.add_comment(wh, SYSTEM, rev, sales_id, date(2024, 3, 1), '=HYPERLINK("http://x","y")')
    notes = review.comments(wh, cat, SYSTEM)
    table = trends.table(t, cat.kpis[rev], "en", notes)
    assert list(table.columns) == [
        "Month",
        "Actual",
        "Same month last year",
        "Baseline",
        "Target",
        "Challenge",
        "YTD Actual",
        "YTD Baseline",
        "YTD Target",
        "YTD Challenge",
        "Comments",
    ]
    sheet = openpyxl.load_workbook(io.BytesIO(workbook.sheet_bytes("trend", table))).active
    cells = {sheet.cell(1, c).value: sheet.cell(4, c) for c in range(1, sheet.max_column + 1)}
    assert cells["Month"].value == "2024-03"
    assert cells["YTD Target"].value == pytest.approx(15_000_000)
    # Comment text that looks like a formula stays text in Excel.
    comment = cells["Comments"]
    assert comment.data_type == "s" and comment.value.startswith("'=HYPERLINK")

    chart = charts.level_bands(t.monthly, cat.kpis[rev], "zh")
    svg = charts.to_svg(chart, title="营业收入 · 销售部")
    assert svg.lstrip().startswith("<svg") and "营业收入 · 销售部" in svg
    assert "基准–目标" in svg  # the legend, drawn on the server
    png = charts.to_png(chart)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
