"""Equal is equal at the KPI's precision: the same actuals loaded through two routes (an export's
totals and price × quantity, a CSV and a workbook) differ by floating-point noise, and a reload
of them changes nothing — no batch, no change-log rows."""

import json
import subprocess
import sys
from datetime import date

import numpy as np
import openpyxl
import pandas as pd
import pytest

from kpi_core import access, actuals, service, workbook
from kpi_core.access import Scope
from kpi_core.ingest import intake, sources
from kpi_core.ingest.profile import Measure, Profile
from kpi_core.ingest.sources import Source
from kpi_core.system_import import import_system
from kpi_core.warehouse import Warehouse

BOTH_ENGINES = True  # the file and PostgreSQL (tests/conftest.py)

TODAY = date(2026, 11, 21)


def written(wh) -> tuple[int, int, int]:
    """Batches, change sets and value rows in the change log."""
    return (
        wh.one("SELECT count(*) FROM batch")[0],
        wh.one("SELECT count(*) FROM value_change_set")[0],
        wh.one("SELECT count(*) FROM value_change")[0],
    )


def month_values(wh, month: str) -> pd.DataFrame:
    return wh.df(
        """SELECT strftime(a.period, '%Y-%m') AS period, u.code AS unit, k.code AS kpi, a.value
           FROM actual a JOIN kpi k ON k.id = a.kpi_id JOIN org_unit u ON u.id = a.unit_id
           WHERE a.period = ?::DATE ORDER BY u.code, k.code""",
        [f"{month}-01"],
    )


def csv_of(rows: pd.DataFrame) -> bytes:
    # repr keeps every bit of the float: the noise reaches the intake as it would from a file.
    lines = ["period,unit,kpi,value"] + [
        f"{r.period},{r.unit},{r.kpi},{float(r.value)!r}" for r in rows.itertuples()
    ]
    return "\n".join(lines).encode()


def load(wh, name: str, data: bytes) -> tuple[intake.Intake, intake.Committed]:
    prepared = intake.prepare(wh, [(name, data)], access.SYSTEM, today=TODAY)
    assert prepared.errors == []
    return prepared, service.commit_actuals(wh, prepared, access.SYSTEM)


def test_the_same_month_with_floating_point_noise_changes_nothing(demo_wh):
    rows = pd.concat([month_values(demo_wh, "2026-09"), month_values(demo_wh, "2026-10")])
    assert len(rows) > 100
    noisy = rows.assign(value=rows["value"] * (1 + 1e-11) + 1e-11)
    assert (noisy["value"] != rows["value"]).all()  # the noise is really there
    before = written(demo_wh)
    prepared, done = load(demo_wh, "export.csv", csv_of(noisy))
    assert prepared.counts == {
        "new": 0, "changed": 0, "unchanged": len(rows), "removed": 0, "invalid": 0
    }  # fmt: skip
    assert prepared.effects.empty and intake.report(prepared, _cat(demo_wh))["changes"] == []
    assert done.batch_id is None and written(demo_wh) == before
    after = pd.concat([month_values(demo_wh, "2026-09"), month_values(demo_wh, "2026-10")])
    assert after["value"].tolist() == rows["value"].tolist()  # the stored values stay as they were


def _cat(wh):
    from kpi_core.catalog import load_catalog

    return load_catalog(wh)


def one(wh, unit: str, kpi: str, month: str = "2026-09") -> float:
    return wh.one(
        """SELECT a.value FROM actual a JOIN kpi k ON k.id = a.kpi_id
           JOIN org_unit u ON u.id = a.unit_id
           WHERE k.code = ? AND u.code = ? AND a.period = ?::DATE""",
        [kpi, unit, f"{month}-01"],
    )[0]


def test_values_equal_at_the_kpis_decimals_are_unchanged_and_others_change(demo_wh):
    places = dict(demo_wh.rows("SELECT code, decimals FROM kpi"))
    units = dict(demo_wh.rows("SELECT code, unit FROM kpi"))
    # The demo's library: revenue in whole 元, satisfaction to 0.1, unit cost to 0.01 元, and
    # on-time delivery a percent (compared by relative tolerance, not by its display decimals).
    assert (places["REV"], places["CSAT"], places["UNIT_COST"]) == (0, 1, 2)
    assert units["ONTIME_DELIV"] == "%"
    first = (
        "period,unit,kpi,value\n2026-09,SALES_E,REV,1234567\n2026-09,SALES,CSAT,88.5\n"
        "2026-09,PROD_L1,UNIT_COST,12.34\n2026-09,PROD_L1,ONTIME_DELIV,0.95\n"
    )
    load(demo_wh, "a.csv", first.encode())
    before = written(demo_wh)
    below = (
        "period,unit,kpi,value\n2026-09,SALES_E,REV,1234567.3\n2026-09,SALES,CSAT,88.54\n"
        "2026-09,PROD_L1,UNIT_COST,12.3449\n2026-09,PROD_L1,ONTIME_DELIV,0.9500000000004\n"
    )
    prepared, done = load(demo_wh, "b.csv", below.encode())
    assert prepared.counts["unchanged"] == 4 and prepared.counts["changed"] == 0
    assert done.batch_id is None and written(demo_wh) == before
    assert one(demo_wh, "SALES_E", "REV") == 1234567  # the stored value stays as it was
    at = (
        "period,unit,kpi,value\n2026-09,SALES_E,REV,1234568\n2026-09,SALES,CSAT,88.6\n"
        "2026-09,PROD_L1,UNIT_COST,12.35\n2026-09,PROD_L1,ONTIME_DELIV,0.9501\n"
    )
    prepared, done = load(demo_wh, "c.csv", at.encode())
    assert prepared.counts["changed"] == 4 and done.batch_id is not None
    assert written(demo_wh)[2] == before[2] + 4
    assert one(demo_wh, "PROD_L1", "ONTIME_DELIV") == 0.9501


@pytest.mark.parametrize(
    ("old", "new", "places", "same"),
    [
        (0.3, 0.1 * 3, np.nan, True),  # noise, no decimals: relative tolerance
        (0.95, 0.9501, np.nan, False),
        (0.0, 5.5e-17, np.nan, True),  # 0.1 + 0.2 - 0.3 is zero
        (1e12, 1e12 * (1 + 1e-11), np.nan, True),
        (1e12, 1e12 + 10_000, np.nan, False),
        (1234.5, 1234.4999999999998, 0, True),  # noise across a rounding edge
        (1234.4, 1234.6, 0, False),
        (1234.4, 1234.2, 0, True),
        (88.5, 88.54, 1, True),
        (88.5, 88.56, 1, False),
        (-3.14159, -3.1449, 2, True),
        (1.0, np.nan, 2, False),  # removed
        (np.nan, 1.0, 2, False),  # new
    ],
)
def test_same_at_precision(old, new, places, same):
    got = actuals.same_at_precision(np.array([old]), np.array([new]), np.array([places]))
    assert got.tolist() == [same]


def test_a_pull_of_price_times_quantity_after_the_invoice_totals_changes_nothing(
    demo_wh, tmp_path, monkeypatch
):
    exports = tmp_path / "exports"  # a folder of its own: the warehouse is in tmp_path
    exports.mkdir()
    monkeypatch.setenv("KPI_SOURCE_DIRS", str(exports))
    # Order lines whose products are not what their totals were written as.
    lines = pd.DataFrame(
        {
            "day": ["2026-09-03", "2026-09-17", "2026-09-20", "2026-09-28"],
            "region": ["SALES_E", "SALES_E", "SALES_N", "SALES_N"],
            "price": [33.35, 0.1, 19.99, 1.15],
            "qty": [3, 3, 7, 3],
        }
    )
    path = exports / "order_lines.csv"
    lines.to_csv(path, index=False)
    east = 33.35 * 3 + 0.1 * 3
    north = 19.99 * 7 + 1.15 * 3
    totals = "period,unit,kpi,value\n2026-09,SALES_E,REV,100.35\n2026-09,SALES_N,REV,143.38\n"
    assert (east, north) != (100.35, 143.38)  # the two routes differ in the last bits
    load(demo_wh, "invoices.csv", totals.encode())
    before = written(demo_wh)
    mapping = Profile(
        name="lines", date_column="day", unit_column="region",
        measures=[Measure("REV", "sum", "=[price] × [qty]")],
    )  # fmt: skip
    source = Source("lines", f"csv://{path}", "SELECT * FROM order_lines", mapping)
    prepared = sources.prepare_pull(demo_wh, source, access.SYSTEM, today=TODAY)
    assert prepared.errors == [] and prepared.counts["changed"] == 0
    assert prepared.counts["unchanged"] == 2
    assert service.commit_actuals(demo_wh, prepared, access.SYSTEM).batch_id is None
    assert written(demo_wh) == before


def test_a_system_workbook_reloaded_with_noise_writes_no_batch(warehouse, tmp_path):
    from tests.conftest import sales_system

    system = sales_system()
    path = tmp_path / "a.xlsx"
    workbook.write(system, path)
    import_system(warehouse, path, by="test", scope=Scope.all())
    before = written(warehouse)
    system["actuals"]["value"] = system["actuals"]["value"] * (1 + 1e-12) + 1e-12
    workbook.write(system, path)
    result = import_system(warehouse, path, by="test", scope=Scope.all())
    assert result.summary.get("actuals_changed", 0) == 0
    assert written(warehouse) == before


def cli(*args):
    proc = subprocess.run(
        [sys.executable, "-m", "kpi_core", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stderr + proc.stdout
    return proc.stdout


def test_the_command_line_loads_a_csv_then_the_same_values_as_xlsx_and_changes_nothing(
    own_file, tmp_path
):
    # The system's export writes price × quantity with every bit (a CSV); the workbook has the
    # invoice totals as typed. Equal at the KPI's precision, not bit for bit.
    lines = [
        ("SALES_E", "REV", 33.35, 3, 100.05),
        ("PROD_L1", "UNIT_COST", 1.1, 3, 3.3),
        ("PROD_L1", "ONTIME_DELIV", 0.1, 3, 0.3),
    ]
    csv = tmp_path / "month.csv"
    csv.write_text(
        "period,unit,kpi,value\n"
        + "".join(f"2026-10,{u},{k},{p * q!r}\n" for u, k, p, q, _ in lines),
        encoding="utf-8",
    )
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["period", "unit", "kpi", "value"])
    for u, k, _, _, total in lines:
        sheet.append(["2026-10", u, k, total])
    xlsx = tmp_path / "month.xlsx"
    book.save(xlsx)
    assert all(
        p * q != total for *_, p, q, total in lines
    )  # the two routes differ in the last bits
    base = ["--warehouse", own_file, "--admin", "import"]
    first = json.loads(cli(*base, csv, "--json"))
    assert first["ok"] and first["batch"] and first["counts"]["changed"] == 3
    second = json.loads(cli(*base, xlsx, "--json"))
    assert second["batch"] is None
    assert second["counts"]["changed"] == 0 and second["counts"]["unchanged"] == 3
    assert second["changes"] == []
    text = cli(*base, xlsx)
    assert "month.xlsx: nothing changed" in text and "changed 0" in text
    wh = Warehouse(own_file, linger=0)
    try:
        assert wh.one("SELECT count(*) FROM batch WHERE kind = 'upload'") == (1,)
        assert wh.one("SELECT count(*) FROM value_change_set") == (1,)
    finally:
        wh.close()
