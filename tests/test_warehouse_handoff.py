"""How a busy process shares the warehouse file: it keeps it while nobody else asks for it, and
lets a waiting process in."""

import shutil
import subprocess
import sys
import textwrap
import time

import pytest

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


def test_the_hand_off_works_under_faketime(tmp_path):
    """The suite runs under libfaketime to prove it passes on any date. There a timed wait on a
    lock that nobody wakes never returns, so an idle writer never looked again and a reader of
    the same file waited out its 30 s and failed. Two Warehouse objects of one file in one
    process (a page's writer and the board's reader) under faketime: the reader gets in."""
    if shutil.which("faketime") is None:
        pytest.fail("faketime is missing: apt-get install -y faketime", pytrace=False)
    code = textwrap.dedent(f"""
        import time
        from kpi_core.warehouse import Warehouse
        path = {str(tmp_path / "wh.duckdb")!r}
        writer = Warehouse(path, linger=60, wait=20)
        with writer.transaction() as cur:
            cur.execute("INSERT INTO phasing_profile VALUES ('p', [1.0])")
        time.sleep(0.5)  # the writer idle: its watcher between two looks
        reader = Warehouse(path, linger=0, wait=20)
        print(reader.one("SELECT count(*) FROM phasing_profile")[0])
        reader.close()
        writer.close()
    """)
    run = subprocess.run(
        ["faketime", "2031-02-28 23:59:00", sys.executable, "-c", code],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.strip() == "1"
