"""How a busy process shares the warehouse file: it keeps it while nobody else asks for it, and
lets a waiting process in."""

import subprocess
import sys
import textwrap
import time

from kpi_core.warehouse import Warehouse
from tests.apptest import ROOT


def test_a_busy_process_alone_on_its_file_keeps_it_open(tmp_path):
    wh = Warehouse(tmp_path / "wh.duckdb", linger=5)
    with wh.hold() as first:
        time.sleep(0.3)  # a long page run
    # Nobody waiting: no close, no pause, no reopening.
    with wh.hold() as again:
        assert again is first
    wh.close()


def test_a_busy_process_lets_a_waiting_process_in(tmp_path):
    path = tmp_path / "wh.duckdb"
    wh = Warehouse(path, linger=5)
    before = wh.data_version()
    code = textwrap.dedent(f"""
        from kpi_core.warehouse import Warehouse
        wh = Warehouse({str(path)!r}, linger=0, wait=60)
        with wh.transaction() as cur:
            cur.execute("INSERT INTO phasing_profile VALUES ('p', [1.0])")
        wh.close()
    """)
    other = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT)
    # This process keeps clicking: a query at a time with short idle moments between them.
    deadline = time.monotonic() + 90
    while other.poll() is None and time.monotonic() < deadline:
        wh.one("SELECT count(*) FROM kpi")
        time.sleep(0.01)
    assert other.wait(timeout=5) == 0
    assert wh.one("SELECT count(*) FROM phasing_profile")[0] == 1
    assert wh.data_version() != before
    assert not list(tmp_path.glob("wh.duckdb.waiting-*"))  # the old hand-off's markers
    wh.close()


def test_a_writer_alone_keeps_the_file_and_an_idle_one_lets_another_process_read(tmp_path):
    path = tmp_path / "wh.duckdb"
    wh = Warehouse(path, linger=60)
    insert = "INSERT INTO phasing_profile VALUES (?, [1.0])"
    with wh.transaction() as cur:
        cur.execute(insert, ["a"])
    with wh.hold() as first:
        pass
    with wh.transaction() as cur:
        cur.execute(insert, ["b"])
    with wh.hold() as again:
        assert again is first  # alone on its file: no reopening between writes
    # Idle (the connection lingers for a minute): another process that wants to read waits
    # only until this one notices, not for the linger.
    code = textwrap.dedent(f"""
        from kpi_core.warehouse import Warehouse
        wh = Warehouse({str(path)!r}, linger=0, wait=10)
        print(wh.one("SELECT count(*) FROM phasing_profile")[0])
        wh.close()
    """)
    other = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert other.returncode == 0, other.stderr[-2000:]
    assert other.stdout.strip() == "2"
    assert wh.one("SELECT count(*) FROM phasing_profile")[0] == 2
    wh.close()
