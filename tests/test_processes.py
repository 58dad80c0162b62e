"""Several processes on one warehouse: read-only together, one writer at a time, no lost write,
and every process sees the others' writes at its next read (kpi_core/shared_file.py)."""

import json
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import openpyxl

from kpi_core import access, planning, review, service
from kpi_core.catalog import load_catalog
from kpi_core.ingest import intake
from kpi_core.warehouse import Warehouse
from tests.apptest import ROOT
from tests.conftest import TODAY

YEAR = TODAY.year
VISITS = 4321.0  # the upload's value: SALES_E's visits in September
COMMENT = "written by one of three processes at once"
NEW_TARGET = "2"


def _grid(wh: Warehouse):
    sales = load_catalog(wh).unit_by_code["SALES"].id
    return planning.target_grid(wh, load_catalog(wh), access.SYSTEM, sales, YEAR, "Y", "en", TODAY)


def _row(grid) -> int:
    return int(grid.index[grid["code"] == "SALES/NEW_CUST"][0])


def _seen(wh: Warehouse) -> dict:
    """What a process reads of the three writes: through the cached grid and catalog (so a
    cache serving stale data fails), and straight from the tables."""
    grid = _grid(wh)
    visits = wh.one(
        """SELECT a.value FROM actual a JOIN kpi k ON k.id = a.kpi_id
           JOIN org_unit u ON u.id = a.unit_id
           WHERE k.code = 'VISITS' AND u.code = 'SALES_E' AND a.period = DATE '2026-09-01'"""
    )[0]
    comments = wh.one("SELECT count(*) FROM comment WHERE text = ?", [COMMENT])[0]
    return {
        "target": grid.at[_row(grid), "target"],
        "visits": visits,
        "comments": comments,
        "version": wh.data_version(),
    }


def _wait_for(paths: list[Path], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not all(p.exists() for p in paths):
        if time.monotonic() > deadline:
            raise TimeoutError(f"waited for {paths}")
        time.sleep(0.01)


def worker(role: str, path: str, folder: str) -> None:
    """One process: reads (filling its caches), waits for the others, writes its one thing at
    the same moment as they do, waits until all three wrote, and reports what it reads."""
    here = Path(folder)
    wh = Warehouse(path, linger=5)
    before = _seen(wh)
    (here / f"ready-{role}").touch()
    _wait_for([here / f"ready-{r}" for r in ROLES])
    cat = load_catalog(wh)
    if role == "target":
        grid = _grid(wh)
        edited = grid.copy()
        for col, text in (("baseline", "1"), ("target", NEW_TARGET)):
            edited[col] = edited[col].astype(object)
            edited.at[_row(grid), col] = text
        planning.save_target_grid(
            wh, cat, access.SYSTEM, grid, edited, reason="three processes",
            effective=date(YEAR, 1, 1),
        )  # fmt: skip
    elif role == "upload":
        data = Path(folder, "upload.xlsx").read_bytes()
        prepared = intake.prepare(wh, [("upload.xlsx", data)], access.SYSTEM, today=TODAY)
        assert not prepared.errors, prepared.errors
        service.commit_actuals(wh, prepared, access.SYSTEM).finish(60)
    else:
        review.add_comment(
            wh, access.SYSTEM, cat.kpi_by_code["REV"].id, cat.unit_by_code["SALES"].id,
            date(2026, 10, 1), COMMENT,
        )  # fmt: skip
    (here / f"done-{role}").touch()
    _wait_for([here / f"done-{r}" for r in ROLES])
    print(json.dumps({"before": before, "after": _seen(wh)}, default=str))
    wh.close()


ROLES = ("target", "upload", "comment")


def test_three_writes_from_three_processes_at_once_all_land_and_all_see_them(own_file, tmp_path):
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["period", "unit", "kpi", "value"])
    sheet.append(["2026-09", "SALES_E", "VISITS", VISITS])
    book.save(tmp_path / "upload.xlsx")
    here = Warehouse(own_file, linger=5)  # this process reads all along, as an app would
    before = _seen(here)
    assert before["target"] != NEW_TARGET and before["visits"] != VISITS
    assert before["comments"] == 0
    procs = {
        role: subprocess.Popen(
            [
                sys.executable,
                "-c",
                f"from tests.test_processes import worker; "
                f"worker({role!r}, {str(own_file)!r}, {str(tmp_path)!r})",
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for role in ROLES
    }
    deadline = time.monotonic() + 240
    while any(p.poll() is None for p in procs.values()) and time.monotonic() < deadline:
        here.one("SELECT count(*) FROM actual")  # a query at a time, idle moments between
        time.sleep(0.005)
    reports = {}
    for role, proc in procs.items():
        out, err = proc.communicate(timeout=max(deadline - time.monotonic(), 1))
        assert proc.returncode == 0, f"{role}: {err[-2000:]}"
        reports[role] = json.loads(out.strip().splitlines()[-1])
    expected = {"target": NEW_TARGET, "visits": VISITS, "comments": 1}
    now = _seen(here)
    assert {k: now[k] for k in expected} == expected
    assert now["version"] != before["version"]
    for role, report in reports.items():
        assert {k: report["after"][k] for k in expected} == expected, role
        assert report["after"]["version"] == now["version"], role
        assert report["before"]["version"] == before["version"], role
    # Three batches of writes, none lost: one target version, one upload batch, one comment.
    assert here.one("SELECT count(*) FROM batch WHERE kind = 'upload'")[0] == 1
    here.close()


def test_two_processes_read_at_the_same_time(own_file):
    """While this process is in the middle of a read, another process reads too: it does not
    wait for this one to let go of the file."""
    here = Warehouse(own_file, linger=60)
    code = (
        "from kpi_core.warehouse import Warehouse\n"
        f"wh = Warehouse({str(own_file)!r}, linger=0, wait=3)\n"
        "print(wh.one('SELECT count(*) FROM kpi')[0])\n"
    )
    with here.cursor() as cur:
        kpis = cur.execute("SELECT count(*) FROM kpi").fetchone()[0]
        other = subprocess.run(
            [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
        )
        assert other.returncode == 0, other.stderr[-2000:]
        assert int(other.stdout) == kpis
    here.close()


def test_two_app_processes_serve_one_signed_in_user_and_see_each_others_writes(own_file, tmp_path):
    """Two `streamlit run` processes on one warehouse, as behind the proxy of kpi_core/serving.py:
    the cookie one issued is accepted by the other, and a write made while a session is open on
    one process shows in that session's very next run."""
    from tests.stream import Session, run_page
    from tests.test_browser import start_app
    from tests.test_session_routes import SIGN_OUT, post, sign_in

    first, first_url = start_app(own_file, log=tmp_path / "first.log")
    second, second_url = start_app(own_file, log=tmp_path / "second.log")
    try:
        cookie = sign_in(first_url, "admin", "admin")
        assert run_page(second_url, cookie=cookie).signed_in
        detail, query = "Detail", "unit=SALES&kpi=REV&period=2026-10&lang=en"
        text = "seen by the other process at its next run"
        with Session(first_url, cookie=cookie, timeout=120) as tab:
            assert text not in tab.run(detail, query).text
            code = (
                "from datetime import date\n"
                "from kpi_core import access, review\n"
                "from kpi_core.catalog import load_catalog\n"
                "from kpi_core.warehouse import Warehouse\n"
                f"wh = Warehouse({str(own_file)!r}, linger=0)\n"
                "cat = load_catalog(wh)\n"
                "review.add_comment(wh, access.SYSTEM, cat.kpi('REV').id, cat.unit('SALES').id,"
                f" date(2026, 10, 1), {text!r})\n"
                "wh.close()\n"
            )
            subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=120)
            again = tab.run(detail, query)
            assert not again.exception
            assert text in again.text
            # Signing out everywhere through the other process ends this tab at its next run.
            assert post(second_url, SIGN_OUT, {"scope": "all"}, cookie=cookie).status_code == 303
            assert tab.run(detail, query).sign_in_form
    finally:
        for proc in (first, second):
            proc.terminate()
            proc.wait(timeout=30)


def test_several_processes_serve_one_port_through_nginx(own_file, tmp_path):
    """kpi_core/serving.py as a user starts it: two processes behind nginx on one port. Browsers
    (each its own sign-in) are signed in there, and their pages run over the proxied WebSocket."""
    from kpi_core.serving import Cluster
    from tests.stream import Session
    from tests.test_browser import free_port
    from tests.test_session_routes import sign_in

    port = free_port()
    cluster = Cluster(
        2, port, folder=tmp_path, env={"KPI_WAREHOUSE": str(own_file)}, address="127.0.0.1"
    )
    try:
        url = f"http://127.0.0.1:{port}"
        cookies = [sign_in(url, "analyst", "analyst") for _ in range(4)]
        for cookie in cookies:
            with Session(url, cookie=cookie, timeout=120) as tab:
                run = tab.run("Board", "unit=SALES&period=2026-10&lang=en")
                assert run.signed_in and not run.exception
        assert cluster.nginx is not None and cluster.nginx.poll() is None
        assert all(app.poll() is None for app in cluster.apps)
    finally:
        cluster.stop()
