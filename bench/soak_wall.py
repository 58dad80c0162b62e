"""The wall screen left running in a real browser, as on the meeting-room wall, while analysts load
data: the app server and Chromium side by side for a given time.

    python bench/soak_wall.py [--minutes 30] [--imports-every 120]

The kiosk page runs with the shortest rotation and refresh it accepts (5 s and 10 s), so half an
hour here is about 180 data refreshes and 360 slide changes — a working week of a wall at the
defaults (30 s / 60 s) compressed. Every `--imports-every` seconds a command-line import commits a
month of actuals to the same warehouse while the wall reads it (the busy warehouse the wall must
ride out). Sampled each minute: the server's RSS and open files, Chromium's JS heap and DOM node
count, and whether the page shows an error, a traceback or a scroll bar.

Goals (issue 7): no error ever shown; memory growth under 5% from the first sample after warm-up
to the end (server RSS and JS heap); open files not growing.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.bench_screen import demo_warehouse, serve, wall_token  # noqa: E402
from tests.test_browser import CHROMIUM, FLAGS  # noqa: E402

PROBE = """() => ({
  heap: performance.memory ? performance.memory.usedJSHeapSize : 0,
  nodes: document.getElementsByTagName('*').length,
  slide: (document.querySelector('.bs-h, .bs-sub') || {}).textContent || '',
  errors: document.querySelectorAll("[data-testid='stException'], [data-testid='stAlertContentError']").length,
  stale: document.body.innerText.includes('stale') || document.body.innerText.includes('数据暂未刷新'),
  scroll: document.documentElement.scrollHeight > window.innerHeight + 1
          || document.documentElement.scrollWidth > window.innerWidth + 1,
})"""


def server_stats(pid: int) -> tuple[int, int]:
    rss = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1])
    return rss, len(os.listdir(f"/proc/{pid}/fd"))


def actuals_csv(path: Path, n: int) -> None:
    # A different value each time, so every import really changes and commits something.
    path.write_text(f"unit,kpi,period,value\nFIN,DSO,2026-10,{60 + n % 20}.5\n", encoding="utf-8")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=30)
    ap.add_argument("--imports-every", type=float, default=120)
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        warehouse = demo_warehouse(tmp / "wh.duckdb")
        token = wall_token(warehouse)
        secrets = tmp / "no-secrets.toml"
        env = {"KPI_WAREHOUSE": str(warehouse), "KPI_SECRETS": str(secrets)}
        app, url = serve(ROOT / "app.py", ROOT, env)
        samples: list[tuple[float, int, int, int, int]] = []
        slides: set[str] = set()
        errors = stale_seen = scrolls = imports = failed_imports = 0
        try:
            with sync_playwright() as p:
                b = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
                page = b.new_page(viewport={"width": 1920, "height": 1080})
                page.goto(f"{url}/Big_Screen?token={token}&rotate=5&refresh=10&lang=zh")
                page.locator(".bs-count >> nth=3").wait_for(timeout=60_000)
                page.wait_for_timeout(60_000)  # warm-up: every slide drawn, caches filled
                start = time.monotonic()
                end = start + args.minutes * 60
                next_sample = next_import = start
                while time.monotonic() < end:
                    now = time.monotonic()
                    probe = page.evaluate(PROBE)
                    slides.add(probe["slide"][:40])
                    errors += probe["errors"] > 0
                    stale_seen += bool(probe["stale"])
                    scrolls += bool(probe["scroll"])
                    if now >= next_sample:
                        rss, fds = server_stats(app.pid)
                        samples.append((now - start, rss, fds, probe["heap"], probe["nodes"]))
                        print(f"{(now - start) / 60:5.1f} min  server {rss / 1024:6.1f} MB "
                              f"{fds:3d} files  page heap {probe['heap'] / 2**20:6.1f} MB "
                              f"{probe['nodes']:5d} nodes", flush=True)  # fmt: skip
                        next_sample += 60
                    if now >= next_import:
                        actuals_csv(tmp / "actuals.csv", imports)
                        done = subprocess.run(
                            [sys.executable, "-m", "kpi_core", "--warehouse", str(warehouse),
                             "--admin", "import", str(tmp / "actuals.csv")],
                            cwd=ROOT, capture_output=True, text=True, timeout=300,
                        )  # fmt: skip
                        imports += 1
                        failed_imports += done.returncode != 0
                        next_import += args.imports_every
                    page.wait_for_timeout(2000)
                rss, fds = server_stats(app.pid)
                probe = page.evaluate(PROBE)
                samples.append((time.monotonic() - start, rss, fds, probe["heap"], probe["nodes"]))
                b.close()
        finally:
            app.terminate()
            app.wait(timeout=20)

    # Two views of growth: over the whole run, and over its last three quarters — a wall that
    # runs for days must level off once the first imports have been read (a plateau is fine,
    # a slope is a leak).
    first, settled, last = samples[0], samples[len(samples) // 4], samples[-1]

    def growth(i: int, since: tuple = first) -> float:
        return (last[i] - since[i]) / since[i] * 100 if since[i] else 0.0

    print(f"\nwall soak: {args.minutes:g} min, {imports} imports committed meanwhile "
          f"({failed_imports} failed), {len(slides)} different slide headings seen")  # fmt: skip
    for label, i, unit in (("server RSS", 1, 2**10), ("page JS heap", 3, 2**20)):
        g, later = growth(i), growth(i, settled)
        print(f"  {label:13s} {first[i] / unit:7.1f} → {settled[i] / unit:7.1f} (at "
              f"{settled[0] / 60:.0f} min) → {last[i] / unit:7.1f} MB   growth {g:+.2f}% in all, "
              f"{later:+.2f}% after {settled[0] / 60:.0f} min  goal < 5%  "
              f"{'PASS' if g < 5 else 'MISS'}")  # fmt: skip
    print(f"  open files    {first[2]} → {last[2]}   {'PASS' if last[2] <= first[2] else 'MISS'}")
    print(f"  DOM nodes     {first[4]} → {last[4]}")
    print(f"  polls showing an error {errors}, a scroll bar {scrolls}, 'stale' {stale_seen}   "
          f"{'PASS' if errors == 0 and scrolls == 0 else 'MISS'}")  # fmt: skip


if __name__ == "__main__":
    main()
