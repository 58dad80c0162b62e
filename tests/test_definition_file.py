"""Profiles and sources as TOML files (kpi_core.ingest.definition_file) and the `profile` /
`source` commands: real warehouses, real files, real processes."""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import date

import pytest

from kpi_core import access
from kpi_core.catalog import load_catalog
from kpi_core.ingest import definition_file, profile, sources
from kpi_core.ingest.definition_file import DefinitionError
from kpi_core.ingest.profile import Filter, Measure, Profile
from kpi_core.ingest.sources import Source
from kpi_core.messages import Message
from kpi_core.warehouse import Warehouse
from tests.said import CJK, chinese

ERP = Profile(
    name="ERP 订单",
    date_column="Order date",
    measures=[
        Measure("REV", "sum", "=[单价] * [数量]", [Filter("状态", "!=", "取消")]),
        Measure("NEW_CUST", "count_distinct", "客户"),
    ],
    sheet="Orders",
    header_row=3,
    unit_column="Region",
    unit_map={"East China": "SALES_E", "华北": "SALES_N"},
)
URL = "postgresql+psycopg://reader:${secrets.source_secrets.erp}@db.example:5432/erp"
QUERY = 'SELECT order_date AS "Order date", region AS "Region",\n  price AS 单价\nFROM orders'


def cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "kpi_core", *map(str, args)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def refused(text: str, cat=None) -> list[Message | str]:
    """The lines of a refused file, as the core says them."""
    with pytest.raises(DefinitionError) as got:
        definition_file.read(text, "erp.toml", cat)
    return got.value.lines


def refusal(text: str, cat=None) -> list[str]:
    """The same in English, as the command line prints them."""
    return [str(line) for line in refused(text, cat)]


def test_a_profile_round_trips_through_its_text():
    text = definition_file.profile_text(ERP)
    assert text.splitlines()[1] == 'type = "profile"'
    assert "[[measures]]" in text and '"East China" = "SALES_E"' in text
    assert definition_file.read(text, "erp.toml") == ERP


def test_a_source_round_trips_and_keeps_its_secret_a_reference(tmp_path, monkeypatch):
    secrets = tmp_path / "secrets.toml"
    secrets.write_text('[source_secrets]\nerp = "s3cret-pw"\n', encoding="utf-8")
    monkeypatch.setenv("KPI_SECRETS", str(secrets))
    s = Source("erp", URL, QUERY, Profile(**{**ERP.__dict__, "name": ""}), 1000, 30)
    text = definition_file.source_text(s)
    assert "s3cret-pw" not in text and "${secrets.source_secrets.erp}" in text
    assert "[mapping]" in text and "[[mapping.measures]]" in text
    assert 'query = """' in text  # the query stays readable, a line a line
    assert definition_file.read(text, "erp.toml") == s
    # A URL saved with a literal password (before the rule) is written masked, and a save of
    # such a file is refused: the secret never leaves the warehouse.
    s.url = "postgresql+psycopg://reader:s3cret-pw@db.example:5432/erp"
    text = definition_file.source_text(s)
    assert "s3cret-pw" not in text and "reader:***@" in text
    (problem,) = refusal(text)
    assert problem.startswith("erp.toml line 4: the URL holds a password")


@dataclass
class Inner:
    op: str
    when: date | None = None


@dataclass
class Outer:
    name: str
    inner: list[Inner]
    fmt: str | None = None
    limit: int = 5
    weights: dict[str, float] = field(default_factory=dict)


def test_fields_are_read_generically_from_the_dataclass():
    # A field another module adds (a date format, a grain) flows through with no change here.
    o = Outer("x", [Inner("=", date(2026, 3, 1)), Inner(">")], "%d/%m/%y", 7, {"a": 1.5})
    text = definition_file.tomli_w.dumps(definition_file.to_data(o))
    assert definition_file.from_data(Outer, definition_file.tomllib.loads(text), text, "f") == o
    short = 'name = "x"\n[[inner]]\nop = "="\n'
    assert definition_file.from_data(Outer, definition_file.tomllib.loads(short), short, "f") == (
        Outer("x", [Inner("=")])
    )


@pytest.mark.parametrize(
    ("change", "said"),
    [
        # an unknown key, named with its line and the keys that are allowed there
        (('kpi = "NEW_CUST"', 'kpii = "NEW_CUST"'),
         "erp.toml line 19: unknown key 'kpii' in 'measures[2]' — the keys there are kpi, agg, "
         "column, filters"),
        # a required key left out
        (('date_column = "Order date"\n', ""), "erp.toml: 'date_column' is missing in the "
         "file's top level"),
        # a wrong type
        (("header_row = 3", 'header_row = "3"'), "erp.toml line 6: 'header_row' must be a whole "
         "number"),
        (('op = "!="', 'op = 2'), "erp.toml line 14: 'measures[1].filters[1].op' must be text in "
         "quotes"),
        # the profile's own problems, on the line of their measure
        (('kpi = "NEW_CUST"', 'kpi = ""'), "erp.toml line 19: measure 2: choose the KPI"),
        (('agg = "count_distinct"', 'agg = "median"'),
         "erp.toml line 20: measure 2: aggregation must be one of sum, count, count_distinct, "
         "avg"),
        # not TOML at all
        (('unit_column = "Region"', 'unit_column = Region'),
         "erp.toml is not valid TOML: Invalid value (at line 7, column 15)"),
    ],
)  # fmt: skip
def test_a_wrong_file_is_refused_naming_the_line(change, said):
    text = definition_file.profile_text(ERP).replace(*change)
    assert said in refusal(text)


def test_every_refusal_reads_in_chinese(demo_wh):
    text = definition_file.profile_text(ERP)
    wrong = [
        text.replace('kpi = "NEW_CUST"', 'kpii = "NEW_CUST"'),
        text.replace('type = "profile"\n', 'type = "profile"\nnmae = 1\n'),
        text.replace('date_column = "Order date"\n', ""),
        text.replace("header_row = 3", 'header_row = "3"').replace("ERP", "x"),
        text.replace("header_row = 3", "header_row = 0").replace('"sum"', '"median"'),
        text.replace('kpi = "NEW_CUST"', 'kpi = ""'),
        text.replace('kpi = "NEW_CUST"', 'kpi = "NOPE"').replace('"SALES_N"', '"NOPE"'),
        text.replace('kpi = "REV"', 'kpi = "GROSS_MARGIN"'),
        text.replace('unit_column = "Region"', "unit_column = Region"),
        text.replace('type = "profile"', 'type = "map"'),
    ]
    lines = [line for t in wrong for line in refused(t, load_catalog(demo_wh))]
    assert len(lines) >= 12
    for line in lines:
        assert isinstance(line, Message), line  # coded: the page renders it from the catalogs
        zh = chinese(line)
        assert zh != str(line) and not zh.startswith("erp.toml line") and CJK.search(zh), line
        # no English words left but the file's own names and values (and the TOML parser's)
        zh = zh.replace("Invalid value", "")
        assert not re.search(r"\b(line|measure|must|the|is|not|unknown|missing)\b", zh), zh
    (toml,) = refused(text.replace('unit_column = "Region"', "unit_column = Region"))
    assert str(toml) == "erp.toml is not valid TOML: Invalid value (at line 7, column 15)"
    assert chinese(toml) == "erp.toml 不是有效的 TOML 文件：第 7 行第 15 列：Invalid value"
    (kpi,) = refused(text.replace('kpi = "NEW_CUST"', 'kpi = ""'))
    assert str(kpi) == "erp.toml line 19: measure 2: choose the KPI"
    assert chinese(kpi) == "erp.toml 第 19 行：第 2 项指标计算：请选择指标"
    with pytest.raises(DefinitionError) as got:
        definition_file.read_profile(text.replace('"profile"', '"source"'), "erp.toml")
    assert str(got.value) == (
        "erp.toml line 2: the file describes a source, not a profile — use the source command or "
        "page for it"
    )
    assert chinese(got.value.lines[0]) == (
        "erp.toml 第 2 行：该文件描述的是数据源，而不是映射方案——请用 source 命令或对应页面处理"
    )


def test_a_file_is_checked_against_the_kpi_library(demo_wh):
    cat = load_catalog(demo_wh)
    text = definition_file.profile_text(ERP)
    assert definition_file.read(text, "erp.toml", cat) == ERP
    bad = (
        text.replace('kpi = "NEW_CUST"', 'kpi = "NEW_CUSTOMERS"')
        .replace('kpi = "REV"', 'kpi = "GROSS_MARGIN"')
        .replace('"华北" = "SALES_N"', '"华北" = "SALES_NORTH"')
    )
    assert refusal(bad, cat) == [
        "erp.toml line 11: measure 1: KPI 'GROSS_MARGIN' is computed (ratio), not loaded — give "
        "the KPIs it is computed from",
        "erp.toml line 19: measure 2: there is no KPI 'NEW_CUSTOMERS'",
        "erp.toml line 25: '华北' is mapped to 'SALES_NORTH', which is not an org unit",
    ]
    # A profile's text declared a source: refused for what a source lacks and does not have.
    said = refusal(text.replace('type = "profile"', 'type = "source"'), cat)
    assert (
        "erp.toml line 4: unknown key 'date_column' in the file's top level — the keys there "
        "are name, url, query, mapping, row_limit, timeout_s"
    ) in said
    assert "erp.toml: 'url' is missing in the file's top level" in said
    with pytest.raises(DefinitionError, match="describes a source, not a profile"):
        definition_file.read_profile(text.replace('"profile"', '"source"'), "erp.toml", cat)


def test_profile_commands_save_list_show_export(own_file, tmp_path):
    text = definition_file.profile_text(ERP)
    path = tmp_path / "erp.toml"
    path.write_text(text, encoding="utf-8")
    wh = ["--warehouse", own_file, "--user", "analyst"]
    done = cli(*wh, "profile", "save", path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "saved profile 'ERP 订单' from erp.toml"
    listed = cli(*wh, "profile", "list").stdout
    assert listed.startswith("ERP 订单  analyst  ")
    shown = cli(*wh, "profile", "show", "ERP 订单").stdout
    assert shown.startswith("# saved by analyst at ") and shown.endswith(text)
    assert cli(*wh, "profile", "export", "ERP 订单").stdout == text
    out = tmp_path / "again.toml"
    assert cli(*wh, "profile", "export", "ERP 订单", "-o", out).returncode == 0
    assert out.read_text(encoding="utf-8") == text
    warehouse = Warehouse(own_file, linger=0)
    try:
        assert profile.load(warehouse, "ERP 订单") == ERP
    finally:
        warehouse.close()
    # A wrong file: exit 1, every problem with its line, nothing saved.
    path.write_text(text.replace('kpi = "REV"', 'kpi = ""').replace("ERP 订单", "ERP 2"), "utf-8")
    refused = cli(*wh, "profile", "save", path)
    assert refused.returncode == 1
    assert "erp.toml line 11: measure 1: choose the KPI" in refused.stderr
    assert cli(*wh, "profile", "list").stdout.count("\n") == 1
    # A viewer reads no definitions; an unknown name is not found.
    viewer = cli("--warehouse", own_file, "--user", "viewer_prod", "profile", "list")
    assert viewer.returncode == 3 and "cannot read profile definitions" in viewer.stderr
    assert cli(*wh, "profile", "show", "nope").returncode == 3


def test_source_commands_never_export_the_secret(own_file, tmp_path, monkeypatch):
    secrets = tmp_path / "secrets.toml"
    secrets.write_text('[source_secrets]\nerp = "s3cret-pw"\n', encoding="utf-8")
    monkeypatch.setenv("KPI_SECRETS", str(secrets))
    mapping = Profile(**{**ERP.__dict__, "name": ""})
    warehouse = Warehouse(own_file, linger=0)
    try:
        sources.save(warehouse, Source("erp", URL, QUERY, mapping), access.SYSTEM)
    finally:
        warehouse.close()
    wh = ["--warehouse", own_file, "--user", "analyst"]
    exported = cli(*wh, "source", "export", "erp")
    assert exported.returncode == 0, exported.stderr
    assert "s3cret-pw" not in exported.stdout and "${secrets.source_secrets.erp}" in exported.stdout
    assert "erp  analyst" not in cli(*wh, "source", "list").stdout  # saved by the system
    path = tmp_path / "erp2.toml"
    path.write_text(exported.stdout.replace('name = "erp"', 'name = "erp2"'), encoding="utf-8")
    assert cli(*wh, "source", "save", path, "--dry-run").returncode == 0
    assert cli(*wh, "source", "save", path).returncode == 0
    assert cli(*wh, "source", "export", "erp2").stdout == path.read_text(encoding="utf-8")
    head = cli("--warehouse", own_file, "--user", "head_sales", "source", "list")
    assert head.returncode == 3


@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("csv:///etc/passwd", "the file /etc/passwd is outside the folders sources may read"),
        ("duckdb:///{warehouse}", "write the database server's host name in the URL"),
    ],
)
def test_a_source_file_cannot_point_at_the_servers_own_files(own_file, tmp_path, url, said):
    """A hostile TOML file saved by an analyst: a source reading a system file, or the
    warehouse itself. Refused at save with the line named, and nothing saved."""
    text = definition_file.source_text(Source("evil", URL, QUERY, Profile(**ERP.__dict__)))
    text = text.replace(f'url = "{URL}"', f'url = "{url.format(warehouse=own_file)}"')
    path = tmp_path / "evil.toml"
    path.write_text(text, encoding="utf-8")
    done = cli("--warehouse", own_file, "--user", "admin", "source", "save", path)
    assert done.returncode == 1 and said in done.stderr and "evil.toml line" in done.stderr
    assert "evil" not in cli("--warehouse", own_file, "--user", "admin", "source", "list").stdout
