"""`python -m kpi_core` as cron would run it: real processes, real files, exit codes."""

import json
import shutil
import subprocess
import sys
import textwrap
import time
from subprocess import PIPE

import pytest

from kpi_core import access, push, workbook
from kpi_core.warehouse import Warehouse
from tests.conftest import sales_system


def cli(*args, check=True):
    proc = subprocess.run(
        [sys.executable, "-m", "kpi_core", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if check and proc.returncode != 0:
        raise AssertionError(proc.stderr + proc.stdout)
    return proc


@pytest.fixture
def sales_file(tmp_path):
    path = tmp_path / "sales.xlsx"
    workbook.write(sales_system(), path)
    return path


def test_help_on_every_command():
    for command in ("init", "import", "rollback", "score", "export"):
        out = cli(command, "--help").stdout
        assert "usage: python -m kpi_core" in out and command in out


def test_import_then_score_json(tmp_path, sales_file):
    wh = tmp_path / "w.duckdb"
    cli("--warehouse", wh, "init")
    dry = json.loads(cli("--warehouse", wh, "import", sales_file, "--dry-run", "--json").stdout)
    assert dry["dry_run"] is True and dry["summary"]["actuals_new"] == 144
    res = json.loads(cli("--warehouse", wh, "import", sales_file, "--json").stdout)
    assert res["ok"] and res["batch"] == 1
    card = json.loads(
        cli("--warehouse", wh, "score", "--unit", "SALES", "--period", "2024", "--json").stdout
    )
    assert set(card) >= {"unit", "period", "score", "status", "coverage", "kpis"}
    assert set(card["kpis"][0]) >= {
        "kpi",
        "actual",
        "baseline",
        "target",
        "challenge",
        "score",
        "status",
        "weight",
    }
    assert card["unit"] == "SALES" and card["period"] == "2024"
    rev = next(k for k in card["kpis"] if k["kpi"] == "REV")
    assert rev["actual"] == pytest.approx(58_000_000) and rev["score"] == pytest.approx(92.0)
    text = cli("--warehouse", wh, "score", "--unit", "SALES", "--period", "2024-Q1").stdout
    assert "SALES 2024-Q1" in text and "REV" in text


def test_exit_codes(tmp_path, sales_file, monkeypatch):
    wh = tmp_path / "w.duckdb"
    monkeypatch.setenv("KPI_WAREHOUSE", str(wh))  # the env var instead of --warehouse
    cli("import", sales_file)
    frames = sales_system()
    frames["tree"].loc[0, "weight"] = 10
    bad = tmp_path / "bad.xlsx"
    workbook.write(frames, bad)
    refused = cli("import", bad, "--json", check=False)
    assert refused.returncode == 1
    problems = json.loads(refused.stdout)["problems"]
    assert problems[0]["sheet"] == "tree" and problems[0]["column"] == "weight"
    assert cli("score", "--unit", "NOPE", "--period", "2024", check=False).returncode == 3
    assert cli("score", "--unit", "SALES", "--period", "24", check=False).returncode == 1
    assert cli("score", "--period", "2024", check=False).returncode == 2
    assert cli("import", tmp_path / "missing.xlsx", check=False).returncode == 1


def test_export_round_trip(tmp_path, sales_file):
    first, second = tmp_path / "a.duckdb", tmp_path / "b.duckdb"
    cli("--warehouse", first, "import", sales_file)
    exported = tmp_path / "export.xlsx"
    cli("--warehouse", first, "export", exported, "--lang", "zh")
    cli("--warehouse", second, "import", exported)
    again = tmp_path / "again.xlsx"
    cli("--warehouse", second, "export", again)
    a, b = workbook.read(exported), workbook.read(again)
    assert {k: s.rows for k, s in a.items()} == {k: s.rows for k, s in b.items()}
    for period in ("2024", "2024-03"):
        args = ("score", "--unit", "CO", "--period", period, "--json")
        assert cli("--warehouse", first, *args).stdout == cli("--warehouse", second, *args).stdout


READER = textwrap.dedent(
    """
    import sys, time
    from kpi_core.warehouse import Warehouse
    wh = Warehouse(sys.argv[1], linger=0.3)
    seen, deadline = set(), time.monotonic() + float(sys.argv[2])
    while time.monotonic() < deadline:
        seen.add(wh.one("SELECT count(*) FROM actual")[0])
        time.sleep(0.01)
    print(sorted(seen))
    """
)


def test_app_and_cli_share_one_warehouse(tmp_path, sales_file):
    """A reading process (as the app) and CLI writes interleave; readers see whole imports only."""
    wh = tmp_path / "w.duckdb"
    cli("--warehouse", wh, "init")
    reader = subprocess.Popen(
        [sys.executable, "-c", READER, str(wh), "6"], stdout=subprocess.PIPE, text=True
    )
    time.sleep(1.5)
    started = time.monotonic()
    cli("--warehouse", wh, "import", sales_file)
    assert time.monotonic() - started < 30
    score = cli("--warehouse", wh, "score", "--unit", "SALES", "--period", "2024", "--json")
    assert json.loads(score.stdout)["status"] == "amber"
    out, _ = reader.communicate(timeout=60)
    assert reader.returncode == 0
    assert json.loads(out) == [0, 144]  # before or after the import, nothing in between


def test_import_actuals_refused_then_accepted_then_rolled_back(tmp_path, sales_file):
    wh = tmp_path / "w.duckdb"
    cli("--warehouse", wh, "import", sales_file)
    month = tmp_path / "march.csv"
    # A department's own CSV: Chinese headers, a name instead of a code, one bad value.
    month.write_text(
        "期间,部门,指标,实际值\n2024年3月,East,REV,520万\n2024-03,EAST,NEW_CUST,十二\n",
        encoding="utf-8-sig",
    )
    refused = cli("--warehouse", wh, "import", month, "--json", check=False)
    assert refused.returncode == 1
    out = json.loads(refused.stdout)
    [problem] = out["problems"]
    assert (problem["row"], problem["column"]) == (3, "D (实际值)")
    assert "'十二' is not a number" in problem["message"] and out["batch"] is None
    loaded = cli("--warehouse", wh, "import", month, "--accept-invalid")
    assert "loaded as batch 2" in loaded.stdout and "changed 1" in loaded.stdout
    assert "row 3" in loaded.stderr  # the left-out value is still listed
    assert stored_rev(wh) == 5_200_000
    undone = cli("--warehouse", wh, "rollback", "2", "--reason", "wrong file")
    assert "1 restored" in undone.stdout and stored_rev(wh) != 5_200_000
    again = cli("--warehouse", wh, "rollback", "2", check=False)
    assert again.returncode == 1 and "rolled back" in again.stderr


def test_import_says_a_refused_file_and_a_sheet_laid_out_wrong_as_before(tmp_path, sales_file):
    """The English the command line prints and `import --json` writes, byte for byte as before
    a file's refusal and a sheet's layout findings were coded messages (kpi_core.ingest.files,
    layout): scripts read it."""
    wh = tmp_path / "w.duckdb"
    cli("--warehouse", wh, "import", sales_file)
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    refused = cli("--warehouse", wh, "import", empty, "--json", check=False)
    said = "empty.csv: the file is empty (0 bytes). Save it again from Excel and retry."
    assert (refused.returncode, refused.stderr) == (1, f"error: {said}\n")
    assert refused.stdout == json.dumps({"ok": False, "error": said, "exit": 1}) + "\n"
    odd = tmp_path / "odd.csv"
    odd.write_text("period,unit,Amount\n2024-03,EAST,5\n2024-03,WEST,6\n", encoding="utf-8")
    lacking = (
        "the header in row 1 has no KPI/指标 or value/实际值 column, so its 2 rows give no values"
    )
    hint = (
        "name the columns as the template does (期间/period, 部门/unit, 指标/KPI, 实际值/value), "
        "or load the sheet with a mapping profile"
    )
    nothing = "nothing to load: no actuals were found"
    nothing_hint = (
        "use columns period/期间, unit/部门, KPI/指标 and value/实际值, download the template, or "
        "map the sheet with a profile"
    )
    got = cli("--warehouse", wh, "import", odd, "--json", check=False)
    assert got.returncode == 1
    assert json.loads(got.stdout)["problems"] == [
        {"severity": "warning", "file": "odd.csv", "sheet": "odd.csv", "row": 1, "column": None,
         "message": lacking, "hint": hint},
        {"severity": "error", "file": "odd.csv", "sheet": "", "row": None, "column": None,
         "message": nothing, "hint": nothing_hint},
    ]  # fmt: skip
    assert f'"message": "{lacking}",\n      "hint": "{hint}"' in got.stdout
    said = cli("--warehouse", wh, "import", odd, check=False).stderr
    assert said == (
        f"warning: odd.csv, row 1: {lacking} — {hint}\nerror: odd.csv: {nothing} — {nothing_hint}\n"
    )


def stored_rev(path) -> float:
    wh = Warehouse(path, linger=0)
    try:
        return wh.one(
            """SELECT a.value FROM actual a JOIN kpi k ON k.id = a.kpi_id
               JOIN org_unit u ON u.id = a.unit_id
               WHERE k.code = 'REV' AND u.code = 'EAST' AND a.period = DATE '2024-03-01'"""
        )[0]
    finally:
        wh.close()


@pytest.mark.parametrize("sheet", ["指标", "实际", "Sheet1"])
def test_a_value_far_away_is_refused_whatever_the_sheet_is_called(tmp_path, sheet):
    # A sheet named like one of the KPI-system workbook's was read by calamine alone to tell
    # a system workbook from actuals, before any size check: it asked for 549 GB and the
    # process aborted. In the app, the Library page's import took the server down the same way.
    import openpyxl

    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = sheet
    for row in (["期间", "组织", "指标编码", "实际值"], ["2026-09", "SALES_E", "REV", 1]):
        ws.append(row)
    ws["XFD1048576"] = 1
    path = tmp_path / "far.xlsx"
    wb.save(path)
    wh = tmp_path / "w.duckdb"
    cli("--warehouse", wh, "init", "--demo")
    refused = cli("--warehouse", wh, "--admin", "import", path, "--dry-run", "--json", check=False)
    assert refused.returncode == 1, refused.stderr
    message = f"sheet '{sheet}' has a value as far as row 1,048,576, column XFD"
    assert message in refused.stderr
    assert json.loads(refused.stdout) == {"ok": False, "error": refused.stderr[7:].strip(),
                                          "exit": 1}  # fmt: skip
    # The Library page's import: the same refusal, as the page shows it.
    library = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(f"""
            from kpi_core import access, service, workbook
            from kpi_core.warehouse import Warehouse
            try:
                service.import_workbook(Warehouse({str(wh)!r}), {str(path)!r}, access.SYSTEM,
                                        dry_run=True)
            except workbook.WorkbookError as exc:
                print(exc)
        """)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert library.returncode == 0, library.stderr
    assert message in library.stdout


def test_an_import_whose_pushes_fail_waits_for_them_and_exits_cleanly(own_file, tmp_path, receiver):
    """A failing push channel after a CLI import: the process waits for the pushes (every retry
    is made and logged) and closes the warehouse only then — exit 0, never an abort because the
    push thread was still using the connection. Four imports at once (two per core), each on its own
    copy."""
    if shutil.which("faketime") is None:
        pytest.fail("faketime is missing: apt-get install -y faketime", pytrace=False)
    down = receiver((500, {"error": "down for maintenance"}))
    wh = Warehouse(own_file, linger=0)
    push.save_channel(wh, access.SYSTEM, "ops", "webhook", f"{down.base}/kpi", min_severity="low")
    wh.close()
    data = tmp_path / "visits.csv"
    data.write_text("period,unit,kpi,value\n2026-10,SALES_E,VISITS,1\n")
    copies = []
    for k in range(4):
        copies.append(tmp_path / f"w{k}.duckdb")
        shutil.copy(own_file, copies[-1])
    # The day is fixed: the file's month must not be in the future for the intake. The
    # monotonic clock is left alone — faked, a thread's timed wait never ends.
    clock = ["faketime", "--exclude-monotonic", "2026-11-21 09:00:00"]
    command = [sys.executable, "-m", "kpi_core", "--admin", "--warehouse"]
    runs = [
        subprocess.Popen(
            [*clock, *command, str(w), "import", str(data)], stdout=PIPE, stderr=PIPE, text=True
        )
        for w in copies
    ]
    try:
        results = [(p.wait(timeout=300), *p.communicate()) for p in runs]
    finally:
        for p in runs:
            if p.poll() is None:
                p.kill()
                p.wait()
    for code, out, err in results:
        assert code == 0, err
        assert "loaded as batch" in out
        assert "Traceback" not in err and "busy" not in err
    for w in copies:
        check = Warehouse(w, linger=0)
        try:
            attempts = check.rows(
                "SELECT alert_id, max(attempt), bool_or(ok) FROM push_log GROUP BY alert_id"
            )
        finally:
            check.close()
        assert attempts, w.name  # something was pushed ...
        assert all(n == 4 and not ok for _, n, ok in attempts), attempts  # ... all retries made


BAD_MONTH = (
    "期间,部门,指标,实际值\n2024年3月,East,REV,520万\n2024-03,EAST,NEW_CUST,十二\n"
    "2024-03,MARS,REV,1\n2024-03,EAST,REVV,1\n2099-01,EAST,REV,1\n2024-Q1,EAST,REV,1\n"
    ",EAST,REV,1\n2024-03,EAST,REV,530万\n2024-04,EAST,REV,#N/A\n2024-04,EAST,NEW_CUST,-5\n"
    "2024,EAST,REV,1\n"
)
# What the command line printed before the intake's findings became coded messages, byte for
# byte (the findings are rendered in English for it; a page renders them in its language).
BAD_MONTH_SAID = """\
error: bad.csv: no period for the values — add a period/期间 column, or name the sheet by its month (2024-03)
error: bad.csv, row 5, column C (指标): unknown KPI 'REVV' — did you mean REV (营业收入 / Revenue)?
error: bad.csv, row 4, column B (部门): unknown unit 'MARS' — check the org units for its code
error: bad.csv, row 7, column A (期间): '2024-Q1' is a quarter — actuals are monthly — write the month as 2024-03, 2024年3月 or an Excel date
error: bad.csv, row 8, column A (期间): no period given — write the month as 2024-03, 2024年3月 or an Excel date
error: bad.csv, row 12, column A (期间): '2024' is a year — actuals are monthly — write the month as 2024-03, 2024年3月 or an Excel date
error: bad.csv, row 6, column A (期间): 2099-01 is in the future — check the period; actuals are loaded once the month has begun
error: bad.csv, row 3, column D (实际值): '十二' is not a number — write a number such as 1250000, 12.5万, 1,234.5 or 96%
error: bad.csv, row 10, column D (实际值): '#N/A' is an Excel error, not a number — fix the cell's formula in Excel (or type the value) and save again
error: bad.csv, row 9, column D (实际值): EAST/REV 2024-03 is also given in sheet 'bad.csv' row 2: 5.2e+06 there, 5.3e+06 here — neither is loaded — keep the right one
"""


def test_an_import_says_its_problems_in_the_same_english_as_before(tmp_path, sales_file):
    wh = tmp_path / "w.duckdb"
    cli("--warehouse", wh, "import", sales_file)
    bad = tmp_path / "bad.csv"
    bad.write_text(BAD_MONTH, encoding="utf-8-sig")
    plain = cli("--warehouse", wh, "import", bad, "--dry-run", check=False)
    assert plain.stderr == BAD_MONTH_SAID
    assert plain.stdout.endswith(
        "bad.csv: refused, nothing written (new 1, changed 0, unchanged 0, removed 0, invalid 10)\n"
    )
    said = json.loads(cli("--warehouse", wh, "import", bad, "--dry-run", "--json",
                          check=False).stdout)["problems"]  # fmt: skip

    # --json holds the same English: message and hint as strings, the column as the file says.
    def line(p: dict) -> str:
        where = ["bad.csv"] + ([f"row {p['row']}"] if p["row"] is not None else [])
        where += [f"column {p['column']}"] if p["column"] is not None else []
        return f"error: {', '.join(where)}: {p['message']} — {p['hint']}"

    lines = [line(p) for p in said]
    assert "\n".join(lines) + "\n" == BAD_MONTH_SAID
    assert said[1] == {
        "severity": "error", "file": "bad.csv", "sheet": "bad.csv", "row": 5, "column": "C (指标)",
        "message": "unknown KPI 'REVV'", "hint": "did you mean REV (营业收入 / Revenue)?",
    }  # fmt: skip
