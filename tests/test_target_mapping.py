"""Target mappings: targets from an analyst's own sheet (kpi_core.ingest.target_mapping), saved
through the one writer of target versions; ISO weeks for targets and actuals. Real Excel files,
a real warehouse, the real command line."""

from __future__ import annotations

import re
import subprocess
import sys
from datetime import date

import openpyxl
import pytest

from kpi_core import access
from kpi_core.access import Scope
from kpi_core.catalog import load_catalog
from kpi_core.errors import ValidationError
from kpi_core.ingest import definition_file, files, profile
from kpi_core.ingest.target_mapping import TargetMapping, TargetMappingError, save
from kpi_core.messages import Message
from kpi_core.periods import PeriodError, iso_week, weeks_of_month
from kpi_core.warehouse import Warehouse
from tests.said import CJK, chinese

BOTH_ENGINES = True  # the file and PostgreSQL (tests/conftest.py)

ADMIN = access.Actor("admin", "admin", Scope.all())
# A channel-target sheet: a title, the header in row 2, a monthly target only on the first week
# row of each channel (blank below = same), weekly targets on every row, and channel ids an
# Excel fill handle counted up (CH01, CH02, … are all one channel: East).
HEADER = ["渠道 / channel", "Week", "Monthly target", "Weekly target"]
ROWS = [
    ["CH01", "2027-W01", "1,200,000", 250_000],
    ["CH02", "2027-W02", None, 300_000],
    ["CH03", "2027-W03", None, 300_000],
    ["CH04", "2027-W04", None, 350_000],
    ["CH01", "2027-W05", 1_500_000, 400_000],
    ["CH02", "2027-W06", None, 400_000],
    ["CH03", "2027-W07", None, 400_000],
    ["CH04", "2027-W08", " ", 300_000],
    [None, None, None, None],
    ["North-1", "2027-W01", 800_000, 200_000],
    ["North-2", "2027-W02", None, 200_000],
    ["North-3", "2027-W03", None, 200_000],
    ["North-4", "2027-W04", None, 200_000],
]
CHANNELS = {f"CH0{i}": "SALES_E" for i in range(1, 5)} | {
    f"North-{i}": "SALES_N" for i in range(1, 5)
}


def channel_sheet(rows=ROWS) -> list[files.Table]:
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "Targets 2027"
    ws.append(["Channel targets 2027"])
    ws.append(HEADER)
    for r in rows:
        ws.append(r)
    import io

    buf = io.BytesIO()
    wb.save(buf)
    return files.read_file("channels.xlsx", buf.getvalue())


def monthly(**kw) -> TargetMapping:
    return TargetMapping(**{
        "name": "channels", "period_column": "week", "target_column": "Monthly target",
        "kpi": "REV", "sheet": "Targets 2027", "header_row": 2, "unit_column": "渠道 / channel",
        "unit_map": CHANNELS, "fill_down": ["Monthly target"], "levels_for": "month", **kw,
    })  # fmt: skip


def stored(wh: Warehouse, unit: str, month: str):
    return wh.rows(
        """SELECT t.target, t.version, t.valid_from, t.changed_by, t.reason FROM target t
           JOIN kpi k ON k.id = t.kpi_id JOIN org_unit u ON u.id = t.unit_id
           WHERE k.code = 'REV' AND u.code = ? AND t.grain = 'M' AND t.period_start = ?
           ORDER BY t.version""",
        [unit, date.fromisoformat(month + "-01")],
    )


def test_iso_weeks_belong_to_the_month_of_their_thursday():
    assert iso_week("2019-W15") == (date(2019, 4, 8), date(2019, 4, 1))
    assert iso_week("2019w01") == (date(2018, 12, 31), date(2019, 1, 1))  # Thursday 3 Jan
    assert iso_week("2020-W53") == (date(2020, 12, 28), date(2020, 12, 1))
    assert iso_week("2019-04") is None
    with pytest.raises(PeriodError, match="2019 has weeks W01 to W52"):
        iso_week("2019-W53")
    assert weeks_of_month(date(2027, 1, 1)) == [date(2027, 1, d) for d in (4, 11, 18, 25)]
    assert len(weeks_of_month(date(2026, 10, 1))) == 5  # Thursdays 1, 8, 15, 22, 29 October


def test_monthly_targets_filled_down_from_weekly_rows(demo_wh):
    cat = load_catalog(demo_wh)
    found, saved = save(
        demo_wh, cat, ADMIN, monthly(), channel_sheet(), reason="2027 plan",
        effective=date(2026, 11, 20),
    )  # fmt: skip
    assert saved.rows == 3
    assert stored(demo_wh, "SALES_E", "2027-01") == [
        (1_200_000.0, 1, date(2027, 1, 1), "admin", "2027 plan")
    ]
    assert stored(demo_wh, "SALES_E", "2027-02")[0][0] == 1_500_000.0
    assert stored(demo_wh, "SALES_N", "2027-01")[0][0] == 800_000.0
    # The same sheet again changes nothing; a changed month is a new version.
    again, _ = save(
        demo_wh,
        cat,
        ADMIN,
        monthly(),
        channel_sheet(),
        reason="again",
        effective=date(2026, 11, 20),
    )
    assert again == []
    rows = [list(r) for r in ROWS]
    rows[4][2] = 1_600_000
    save(demo_wh, cat, ADMIN, monthly(), channel_sheet(rows), reason="up",
         effective=date(2026, 12, 1))  # fmt: skip
    assert [r[:2] for r in stored(demo_wh, "SALES_E", "2027-02")] == [
        (1_500_000.0, 1),
        (1_600_000.0, 2),
    ]


def test_weekly_targets_add_up_to_months(demo_wh):
    cat = load_catalog(demo_wh)
    mapping = monthly(target_column="Weekly target", fill_down=[], levels_for=None)
    found, _ = save(demo_wh, cat, ADMIN, mapping, channel_sheet(), reason="weekly plan",
                    effective=date(2026, 11, 20))  # fmt: skip
    assert {(e.where(cat), e.new["target"]) for e in found} == {
        ("SALES_E/REV 2027-01", 1_200_000.0),
        ("SALES_E/REV 2027-02", 1_500_000.0),
        ("SALES_N/REV 2027-01", 800_000.0),
    }
    assert stored(demo_wh, "SALES_N", "2027-01")[0][0] == 800_000.0


def test_what_does_not_fit_is_named_and_nothing_is_written(demo_wh):
    cat = load_catalog(demo_wh)

    def refused(mapping, rows=ROWS) -> str:
        with pytest.raises((TargetMappingError, ValidationError)) as got:
            save(demo_wh, cat, ADMIN, mapping, channel_sheet(rows), reason="r",
                 effective=date(2026, 11, 20))  # fmt: skip
        if isinstance(got.value, TargetMappingError):  # the page shows each line in Chinese
            assert str(got.value).splitlines() == [str(line) for line in got.value.lines]
            for line in got.value.lines:
                assert isinstance(line, Message), line  # rendered from the catalogs
                zh = chinese(line)
                assert CJK.search(zh) and "sheet '" not in zh and " row " not in zh, line
                assert not re.search(r"\b(no|is|not|for|but|says|week|lacks|sum)\b", zh), zh
                said_zh.append(zh)
        return str(got.value)

    said_zh: list[str] = []

    where = "channels.xlsx sheet 'Targets 2027'"
    # Without fill-down the blank below is not a target.
    said = refused(monthly(fill_down=[]))
    assert f"{where} row 4 column 'Monthly target': no target — fill it in, or list the column " \
        "in fill_down if a blank means the value above" in said  # fmt: skip
    # A week of a month missing; a channel nobody mapped.
    rows = [r for r in ROWS if r[1] != "2027-W08"] + [["CH09", "2027-W09", 1, 1]]
    said = refused(monthly(target_column="Weekly target", fill_down=[], levels_for=None), rows)
    assert f"{where} row 15 column '渠道 / channel': 'CH09' is not an org unit" in said
    rows = [r for r in ROWS if r[1] != "2027-W08"]
    said = refused(monthly(target_column="Weekly target", fill_down=[], levels_for=None), rows)
    assert f"{where}: SALES_E/REV 2027-02 lacks week 2027-W08" in said
    # Rows of one month that disagree.
    rows = [list(r) for r in ROWS]
    rows[2][2] = 999
    said = refused(monthly(), rows)
    assert (
        f"{where} row 5: target 999 for SALES_E/REV 2027-01, but row 3 says target 1,200,000"
        in said
    )
    # Weekly values of a KPI that is not a sum cannot be added up.
    said = refused(
        monthly(kpi="CSAT", target_column="Weekly target", fill_down=[], levels_for=None)
    )
    assert "SALES_E/CSAT is not a sum (avg), so its weekly values cannot be added up" in said
    for zh in [
        "channels.xlsx 工作表“Targets 2027”第 4 行“Monthly target”列：缺少目标值——请填写；如果空白"
        "表示与上方相同，请把该列加入 fill_down",
        "channels.xlsx 工作表“Targets 2027”第 15 行“渠道 / channel”列：“CH09”不是组织——请在 "
        "unit_map 中把文件中的值对应到组织编码",
        "channels.xlsx 工作表“Targets 2027”：SALES_E/REV 2027-02 缺少 2027-W08 周——月度目标是该月"
        "所有周之和（一周归入其星期四所在的月份）",
        "channels.xlsx 工作表“Targets 2027”第 5 行：SALES_E/REV 2027-01 为 目标值 999，但第 3 行为 "
        "目标值 1,200,000——同一月的各行必须一致",
    ]:
        assert zh in said_zh, said_zh
    assert any("SALES_E/CSAT 不是求和型指标（avg）" in zh for zh in said_zh[4:])
    # The one writer's own checks: a department head outside the unit.
    head = access.Actor("head_prod", "head", Scope(frozenset({cat.unit_by_code["PROD"].id})))
    with pytest.raises(ValidationError, match="outside your scope"):
        save(
            demo_wh, cat, head, monthly(), channel_sheet(), reason="r", effective=date(2026, 11, 20)
        )
    assert stored(demo_wh, "SALES_E", "2027-01") == []


def test_actuals_by_iso_week_count_in_the_month_of_the_thursday():
    tables = [files.Table("w.csv", "", [["week", "amount"], ["2027-W04", 10], ["2027-W05", 5],
                                        ["2026-W53", 1]])]  # fmt: skip
    p = profile.Profile("weekly", "week", [profile.Measure("REV", "sum", "amount")], unit="SALES_E")
    records, findings = profile.apply(p, tables)
    assert findings == []
    assert sorted(zip(records.period, records.value, strict=True)) == [
        (date(2026, 12, 1), 1.0),
        (date(2027, 1, 1), 10.0),
        (date(2027, 2, 1), 5.0),
    ]


def test_targets_command(own_file, tmp_path):
    mapping = tmp_path / "channels.toml"
    mapping.write_text(definition_file.target_mapping_text(monthly()), encoding="utf-8")
    sheet = tmp_path / "channels.xlsx"
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "Targets 2027"
    ws.append(["Channel targets 2027"])
    ws.append(HEADER)
    for r in ROWS:
        ws.append(r)
    wb.save(sheet)

    def cli(*args):
        return subprocess.run(
            [sys.executable, "-m", "kpi_core", "--warehouse", own_file, "--user", "admin",
             "targets", sheet, "--mapping", mapping, "--reason", "2027 plan", *args],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip

    dry = cli("--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "SALES_E/REV 2027-01: target — → 1,200,000.00" in dry.stdout
    assert dry.stdout.strip().endswith("channels.xlsx: would save 3 target versions")
    done = cli()
    assert done.returncode == 0 and "saved 3 target versions" in done.stdout
    wh = Warehouse(own_file, linger=0)
    try:
        assert stored(wh, "SALES_N", "2027-01")[0][:2] == (800_000.0, 1)
    finally:
        wh.close()
    mapping.write_text(
        definition_file.target_mapping_text(monthly()).replace("levels_for", "level_for"), "utf-8"
    )
    bad = cli()
    assert bad.returncode == 1 and "unknown key 'level_for'" in bad.stderr
