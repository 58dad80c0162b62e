"""A KPI card's sparkline and change take the colour of the KPI's light, never a colour that
contradicts it; the change says in words whether it is better or worse."""

from __future__ import annotations

from datetime import date

import pytest
from streamlit.proto.Metric_pb2 import Metric

from kpi_core import access, service, workbook
from kpi_core.access import Scope
from kpi_core.ingest import intake
from kpi_core.system_import import import_system
from kpi_core.warehouse import Warehouse
from tests.apptest import open_page
from tests.conftest import sales_system

# Complaint rate is lower-is-better (baseline 2%, target 1%): 4% in November, 3% in December —
# better, yet still red. Revenue (monthly baseline 4.17M, target 5M) falls from 4.83M to 4.4M:
# worse, and amber.
DECEMBER = """period,unit,kpi,value
2024-11,PROD,COMPLAINT,0.04
2024-12,PROD,COMPLAINT,0.03
2024-12,EAST,REV,2500000
2024-12,NORTH,REV,1900000
"""


@pytest.fixture
def worse(tmp_path):
    path = tmp_path / "sales.xlsx"
    workbook.write(sales_system(), path)
    wh = Warehouse(tmp_path / "wh.duckdb", linger=0)
    import_system(wh, path, by="test", scope=Scope.all())
    prepared = intake.prepare(
        wh, [("dec.csv", DECEMBER.encode())], access.SYSTEM, today=date(2025, 1, 10)
    )
    assert not prepared.errors
    service.commit_actuals(wh, prepared, access.SYSTEM)
    wh.close()
    return tmp_path / "wh.duckdb"


def card_metric(at, value: str):
    found = [m for m in at.metric if m.value == value]
    assert len(found) == 1, [m.value for m in at.metric]
    return found[0].proto


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_a_red_lower_is_better_kpi_that_improved_gets_a_red_line(worse, monkeypatch, lang):
    at = open_page(
        "pages/1_Board.py", worse, monkeypatch, lang, query={"unit": "PROD", "period": "2024-12"}
    )
    card = next(m.value for m in at.markdown if "Complaint rate" in m.value or "投诉率" in m.value)
    assert ("■ Red" if lang == "en" else "■ 红灯") in card
    complaint = card_metric(at, "3.0%")
    assert len(complaint.chart_data) == 12  # the sparkline is drawn...
    assert complaint.color == Metric.MetricColor.RED  # ...in the light's colour, not green
    assert complaint.direction == Metric.MetricDirection.DOWN  # the arrow says it fell
    assert ("better" if lang == "en" else "改善") in complaint.delta_description


def test_an_amber_kpi_whose_value_fell_gets_an_amber_line(worse, monkeypatch):
    at = open_page(
        "pages/1_Board.py", worse, monkeypatch, "en", query={"unit": "SALES", "period": "2024-12"}
    )
    card = next(m.value for m in at.markdown if m.value.startswith("**Revenue**"))
    assert "▲ Amber" in card
    revenue = card_metric(at, "4.40M CNY")
    assert revenue.direction == Metric.MetricDirection.DOWN
    assert revenue.color == Metric.MetricColor.ORANGE  # amber, not the red of a fall
    assert "worse" in revenue.delta_description


def test_the_walls_trend_bars_say_their_light_in_a_shape_too(demo_wh):
    """The company slide's monthly bars are coloured by each month's light; each also carries
    the light's shape, so colour is never the only signal."""
    from kpi_core import i18n, screen
    from kpi_core.catalog import load_catalog
    from kpi_core.ui.slides import company_slide

    data = screen.screen_data(demo_wh, load_catalog(demo_wh), ["GROUP"], "en")
    html = company_slide(data, 0, 1)
    for _, score, status in data.companies[0].trend:
        assert f"{i18n.STATUS_ICON[status]} {score:.1f}" in html
