"""Big screen: time from navigation to all tiles visible against a plain Streamlit hello page (same
run, same browser), and a soak of refresh cycles reporting memory and open files at start and end.

    python bench/bench_screen.py [--runs 5] [--cycles 2000] [--skip-browser]

Goals (issue 7): tiles visible within 2× the hello page's time; memory growth under 5%.
The soak runs the fragment's whole refresh path in this process — the data read through
`LAST_GOOD` with a time-to-live of 0 (every cycle reads the warehouse, which opens and lets go
of the file) and the slide rendered to HTML — on a copy of the demo warehouse.
"""

from __future__ import annotations

import argparse
import gc
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kpi_core import access, demo, kiosk, memo, screen, service  # noqa: E402
from kpi_core.catalog import load_catalog  # noqa: E402
from kpi_core.ui.slides import Params, render  # noqa: E402
from kpi_core.warehouse import Warehouse  # noqa: E402
from tests.test_browser import CHROMIUM, FLAGS, free_port  # noqa: E402

# The soak computes the wall's data at every cycle, as it did before the page caches.
memo.ENABLED = False

HELLO = 'import streamlit as st\n\nst.title("Hello")\nst.write("A plain page.")\n'


def rss_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def serve(script: Path, cwd: Path, env: dict) -> tuple[subprocess.Popen, str]:
    import urllib.request

    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(script), "--server.port", str(port),
         "--server.address", "127.0.0.1", "--server.headless", "true"],
        cwd=cwd, env={**os.environ, **env},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2):
                return proc, url
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit(f"{script} did not start")


def browser_bench(tmp: Path, warehouse: Path, runs: int) -> None:
    from playwright.sync_api import sync_playwright

    token = wall_token(warehouse)
    secrets = tmp / "no-secrets.toml"
    hello_dir = tmp / "hello"
    hello_dir.mkdir()
    (hello_dir / "hello.py").write_text(HELLO, encoding="utf-8")
    app, app_url = serve(ROOT / "app.py", ROOT,
                         {"KPI_WAREHOUSE": str(warehouse), "KPI_SECRETS": str(secrets)})  # fmt: skip
    hello, hello_url = serve(hello_dir / "hello.py", hello_dir, {})
    try:
        with sync_playwright() as p:
            b = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
            cases = {
                "hello page": (f"{hello_url}/", "h1:has-text('Hello')"),
                "big screen": (
                    f"{app_url}/Big_Screen?token={token}&rotate=600&slides=company",
                    ".bs-count >> nth=3",
                ),
            }
            times: dict[str, list[float]] = {k: [] for k in cases}
            for i in range(runs + 1):  # the first run of each warms the servers up
                for name, (url, selector) in cases.items():
                    page = b.new_page(viewport={"width": 1920, "height": 1080})
                    start = time.perf_counter()
                    page.goto(url)
                    page.locator(selector).wait_for(timeout=60_000)
                    if name == "big screen":  # all tiles: the four counts and six trend bars
                        page.wait_for_function(
                            "() => document.querySelectorAll('.bs-trend .col').length === 6"
                        )
                    if i:
                        times[name].append(time.perf_counter() - start)
                    page.close()
            b.close()
    finally:
        for proc in (app, hello):
            proc.terminate()
            proc.wait(timeout=20)
    hello_ms = statistics.median(times["hello page"]) * 1000
    screen_ms = statistics.median(times["big screen"]) * 1000
    ratio = screen_ms / hello_ms
    print(f"navigation → visible, median of {runs} (1920×1080):")
    print(f"  hello page   {hello_ms:7.0f} ms")
    print(f"  big screen   {screen_ms:7.0f} ms   ratio {ratio:.2f}×  goal ≤ 2×  "
          f"{'PASS' if ratio <= 2 else 'MISS'}")  # fmt: skip


def soak(warehouse: Path, cycles: int) -> None:
    wh = Warehouse(warehouse)  # the app's defaults: the file let go of after 1 s idle
    params = Params("bench", 30, 60, (), "zh", ())
    cache = screen.LastGood()

    def compute():
        cat = load_catalog(wh)
        return screen.screen_data(wh, cat, ["GROUP"], "zh", title="wall")

    def cycle(i: int) -> None:
        snap = cache.get(("wall",), compute, ttl=0)
        assert snap.stale_since is None, snap.error
        render(snap, params, datetime.now(), i * 30.0)  # a different slide each cycle

    for i in range(50):  # warm-up: caches, imports, allocator pools
        cycle(i)
    gc.collect()
    rss0, fds0 = rss_kb(), open_fds()
    start = time.perf_counter()
    for i in range(cycles):
        cycle(i)
        if i % 50 == 49:
            wh.close()  # as after an idle second between the wall's refreshes
    gc.collect()
    took = time.perf_counter() - start
    rss1, fds1 = rss_kb(), open_fds()
    growth = (rss1 - rss0) / rss0 * 100
    print(f"soak: {cycles} refresh cycles in {took:.0f} s ({took / cycles * 1000:.0f} ms each)")
    print(f"  RSS  {rss0 / 1024:7.1f} MB → {rss1 / 1024:7.1f} MB   growth {growth:+.2f}%  "
          f"goal < 5%  {'PASS' if growth < 5 else 'MISS'}")  # fmt: skip
    print(f"  open files {fds0} → {fds1}   {'PASS' if fds1 <= fds0 else 'MISS'}")
    wh.close()


def demo_warehouse(path: Path) -> Path:
    """A fresh demo warehouse file, as the app creates on first start."""
    wh = Warehouse(path, linger=0)
    service.ensure_demo(wh, today=demo.REFERENCE_TODAY)
    wh.close()
    return path


def wall_token(path: Path, units: tuple[str, ...] = ("GROUP",)) -> str:
    """A kiosk screen for the wall, made as an admin does on the Admin page; its token."""
    wh = Warehouse(path, linger=0)
    try:
        made = kiosk.create(wh, access.SYSTEM, name="bench wall", units=list(units),
                            now=datetime.now())  # fmt: skip
    finally:
        wh.close()
    return made.token


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--cycles", type=int, default=2000)
    ap.add_argument("--skip-browser", action="store_true")
    ap.add_argument("--skip-soak", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        warehouse = demo_warehouse(tmp / "wh.duckdb")
        if not args.skip_browser:
            browser_bench(tmp, warehouse, args.runs)
        if not args.skip_soak:
            shutil.copy(warehouse, tmp / "soak.duckdb")
            soak(tmp / "soak.duckdb", args.cycles)


if __name__ == "__main__":
    main()
