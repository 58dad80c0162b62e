"""Trends marks the months not complete yet: in words above the chart and as a ring on the line,
from the same rule as the boards (kpi_core/completeness.py)."""

from __future__ import annotations

import json
from datetime import date

import pandas as pd
import pytest

from kpi_core import charts, trends
from kpi_core.access import Scope
from kpi_core.catalog import load_catalog
from kpi_core.warehouse import Warehouse
from tests.apptest import open_page
from tests.test_completeness import NOV, OCT, load_seven


@pytest.fixture
def seven(own_file):
    wh = Warehouse(own_file, linger=0)
    load_seven(wh)
    wh.close()
    return own_file


def test_the_partial_months_of_a_kpi(seven):
    wh = Warehouse(seven, linger=0)
    try:
        cat = load_catalog(wh)
        rev, sales = cat.kpi("REV").id, cat.unit("SALES").id
        found = trends.partial_months(wh, cat, rev, sales, [OCT, NOV])
    finally:
        wh.close()
    assert list(found) == [NOV]  # October is complete
    status, lacking = found[NOV]
    assert (status.loaded, status.expected) == (7, 25)
    assert [cat.units[u].code for u in lacking] == ["SALES_S"]  # revenue lacks South China


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_trends_marks_the_partial_month(seven, monkeypatch, lang):
    at = open_page(
        "pages/7_Trends.py", seven, monkeypatch, lang,
        query={"unit": "SALES", "kpi": "REV", "from": "2026-01", "to": "2026-11"},
    )  # fmt: skip
    said = "\n".join(w.value for w in at.warning)
    if lang == "en":
        assert "2026-11 partial · 7 of 25 values" in said and "South China Region" in said
    else:
        assert "2026年11月" in said and "7/25" in said and "华南大区" in said
    latest = at.metric[0].label
    assert latest.endswith("◐ Partial month" if lang == "en" else "◐ 未完整月份"), latest
    spec = json.loads(at.get("vega_lite_chart")[0].proto.spec)
    text = json.dumps(spec, ensure_ascii=False)
    assert ("Partial month" if lang == "en" else "未完整月份") in text


def test_the_chart_rings_the_partial_months_only(seven):
    wh = Warehouse(seven, linger=0)
    try:
        cat = load_catalog(wh)
        rev, sales = cat.kpi("REV").id, cat.unit("SALES").id
        months = [date(2026, m, 1) for m in range(1, 12)]
        t = trends.trend(wh, cat, Scope.all(), rev, sales, months)
    finally:
        wh.close()
    partial = pd.DataFrame({"month": [NOV], "state": ["partial · 7 of 25 values"]})
    spec = charts.level_bands(t.monthly, cat.kpis[rev], "en", partial=partial).to_dict()
    rings = [d for d in spec["datasets"].values() if d and "state" in d[0]]
    assert [(r["label"], r["state"]) for r in rings[0]] == [("2026-11", "partial · 7 of 25 values")]
    assert "Partial month" in spec["layer"][-1]["encoding"]["color"]["scale"]["domain"]
    plain = charts.level_bands(t.monthly, cat.kpis[rev], "en").to_dict()
    assert "Partial month" not in json.dumps(plain)
