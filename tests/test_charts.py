"""Chart builders, asserted on their Vega-Lite specs (never on pixels)."""

from kpi_core import board, charts
from kpi_core.access import SYSTEM
from kpi_core.catalog import load_catalog
from kpi_core.periods import parse_period


def sales_board(wh):
    cat = load_catalog(wh)
    return cat, board.board(wh, cat, SYSTEM.scope, cat.unit("SALES").id, parse_period("2024"))


def layer_data(spec, i):
    data = spec["layer"][i].get("data") or spec["data"]
    return spec["datasets"][data["name"]]


def test_bullet_chart_bands_follow_levels(sales_wh):
    cat, b = sales_board(sales_wh)
    spec = charts.bullet_chart([line.node for line in b.lines], cat, "en").to_dict()
    bands = [r for r in layer_data(spec, 0) if r["kpi"] == "Revenue"]
    # Revenue: baseline 50M / target 60M / challenge 70M → red to 83.3%, amber to 100%, green to 116.7%.
    assert [(r["band"], round(r["start"], 3)) for r in bands][:3] == [
        ("red", 0),
        ("amber", 0.833),
        ("green", 1.0),
    ]
    revenue = next(r for r in layer_data(spec, 1) if r["kpi"] == "Revenue")
    assert round(revenue["share"], 4) == round(58 / 60, 4)
    assert revenue["actual"] == "58.00M CNY" and revenue["status"] == "Amber"
    assert spec["layer"][2]["mark"]["type"] == "rule"  # the target line at 100%


def test_status_matrix_has_a_cell_per_kpi_node(sales_wh):
    cat, b = sales_board(sales_wh)
    spec = charts.status_matrix(b.matrix, cat, "zh").to_dict()
    rows = layer_data(spec, 0)
    cells = {(r["unit"], r["kpi"]) for r in rows}
    assert ("销售部", "营业收入") in cells and ("华东大区", "营业收入") in cells
    assert {r["icon"] for r in rows} <= {"●", "▲", "■", "○"}


def test_score_bars_rank_and_label(sales_wh):
    cat = load_catalog(sales_wh)
    from kpi_core.scorecard import evaluate

    res = evaluate(sales_wh, cat, SYSTEM.scope, [cat.unit("CO").id], parse_period("2024"))
    units = [n for _, n in res[cat.unit("CO").id].unit_children()]
    # Given worst first, drawn best first: the chart ranks whatever order it is handed.
    units.sort(key=lambda n: n.score or 0)
    spec = charts.score_bars(units, cat, "en").to_dict()
    marks = [layer["mark"]["type"] for layer in spec["layer"]]
    assert marks == ["rule", "bar", "text", "text"]  # rules under the bars, labels on top
    data = layer_data(spec, 1)
    assert [r["unit"] for r in data] == ["Sales", "Production"]
    assert spec["layer"][1]["encoding"]["y"]["sort"] == ["Sales", "Production"]
    assert all(r["label"].endswith(("●", "▲", "■")) for r in data)
    assert spec["layer"][2]["mark"]["stroke"] == "white"  # the halo under each label
