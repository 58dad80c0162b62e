"""`python -m kpi_core publish / unpublish`: a month made final from the command line, as the
Upload page does it — said with what it lacks first, audited, refused to those who may not."""

from __future__ import annotations

import json

from kpi_core import completeness
from kpi_core.catalog import load_catalog
from kpi_core.warehouse import Warehouse
from tests.test_cli import cli
from tests.test_completeness import NOV, load_seven


def test_publish_and_withdraw_a_partial_month(own_file):
    wh = Warehouse(own_file, linger=0)
    load_seven(wh)
    wh.close()
    said = cli("--warehouse", own_file, "--user", "analyst", "publish", "2026-11")
    # The analyst's scope is the group: it is published, with what it lacks said first.
    assert "GROUP 2026-11: partial · 7 of 76 values" in said.stdout
    assert "missing: " in said.stdout and "SALES 7/25" in said.stdout
    assert "→ published" in said.stdout
    wh = Warehouse(own_file, linger=0)
    cat = load_catalog(wh)
    group = cat.unit("GROUP").id
    assert completeness.month_status(wh, cat, group, NOV).state == completeness.PUBLISHED
    log = wh.rows("SELECT changed_by, key, new FROM audit WHERE entity = 'month_publish'")
    wh.close()
    assert log == [("analyst", "GROUP/2026-11", "True")]

    out = json.loads(
        cli("--warehouse", own_file, "--user", "analyst", "unpublish", "2026-11", "--json").stdout
    )
    assert out["ok"] and out["month"] == "2026-11"
    [unit] = out["units"]
    assert (unit["unit"], unit["published"], unit["state"]) == ("GROUP", False, "partial")
    assert (unit["loaded"], unit["expected"]) == (7, 76)
    wh = Warehouse(own_file, linger=0)
    assert completeness.month_status(wh, cat, group, NOV).state == completeness.PARTIAL
    wh.close()


def test_publish_one_unit_and_the_refusals(own_file):
    wh = Warehouse(own_file, linger=0)
    load_seven(wh)
    wh.close()
    out = json.loads(
        cli("--warehouse", own_file, "--admin", "publish", "2026-11", "--unit", "SALES", "--json")
        .stdout
    )  # fmt: skip
    assert [(u["unit"], u["published"]) for u in out["units"]] == [("SALES", True)]
    assert {"unit": "SALES_S", "loaded": 0, "expected": 8} in out["units"][0]["missing"]
    # A head may not publish; an unknown unit; a month with nothing loaded; not a month.
    head = cli("--warehouse", own_file, "--user", "head_sales", "publish", "2026-11", check=False)
    assert head.returncode == 3 and "cannot publish months" in head.stderr
    nope = cli("--warehouse", own_file, "--admin", "publish", "2026-11", "--unit", "NOPE",
               check=False)  # fmt: skip
    assert nope.returncode == 3
    later = cli("--warehouse", own_file, "--admin", "publish", "2027-01", check=False)
    assert later.returncode == 1 and "nothing is loaded for 2027-01" in later.stderr
    assert cli("--warehouse", own_file, "--admin", "publish", "2026", check=False).returncode == 1
