"""Where a page run's time goes: cProfile over warm runs of one page through Streamlit's AppTest.

    python bench/profile_page.py [--warehouse demo|large|PATH] [--page pages/1_Board.py]
                                 [--query unit=SALES --query period=2026-10] [--runs 5]
                                 [--top 25] [--cold]

The warehouse is a temporary copy (the demo's, the large bench warehouse's, or PATH's) with its
users removed, so that the page needs no sign-in (the gate costs one small query either way).
The first run (a first visit) is not profiled; the next `--runs` are, and the functions with
the most cumulative time are printed. `--cold` commits an empty write before each profiled run,
so every run pays for new data.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from streamlit.runtime.scriptrunner import script_runner  # noqa: E402
from streamlit.testing.v1 import AppTest  # noqa: E402

from kpi_core import demo  # noqa: E402
from kpi_core.warehouse import Warehouse  # noqa: E402

sys.path.insert(0, str(ROOT / "bench"))
from load import make_warehouse  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--warehouse", default="demo")
    p.add_argument("--page", default="app.py")
    p.add_argument("--query", action="append", default=[], help="name=value")
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--top", type=int, default=25)
    p.add_argument("--cold", action="store_true")
    p.add_argument("--only", default="", help="a regular expression the printed functions match")
    args = p.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="kpi-profile-"))
    path = folder / "wh.duckdb"
    make_warehouse(args.warehouse, path)
    wh = Warehouse(path, linger=0)
    with wh.transaction() as cur:
        cur.execute("DELETE FROM app_session")
        cur.execute("DELETE FROM app_user")
    wh.close()
    os.environ["KPI_WAREHOUSE"] = str(path)
    os.environ.setdefault("KPI_TODAY", demo.REFERENCE_TODAY.isoformat())
    # The entry first, then the page, as a user opens it (page links are relative to the entry).
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300)
    at.session_state["lang"] = "en"
    for q in args.query:
        name, _, value = q.partition("=")
        at.query_params[name] = value
    started = time.perf_counter()
    at.run()
    if args.page != "app.py":
        at.switch_page(args.page).run()
    first = time.perf_counter() - started
    if at.exception:
        raise SystemExit([e.value for e in at.exception])
    # The script runs on a thread of its own: profile the function that executes it.
    profile = cProfile.Profile()
    execute = script_runner.exec_func_with_error_handling

    def profiled(func, ctx):
        profile.enable()
        try:
            return execute(func, ctx)
        finally:
            profile.disable()

    script_runner.exec_func_with_error_handling = profiled
    times = []
    for _ in range(args.runs):
        if args.cold:
            with wh.transaction():
                pass
            wh.close()
        started = time.perf_counter()
        at.run()
        times.append(time.perf_counter() - started)
    out = io.StringIO()
    pstats.Stats(profile, stream=out).sort_stats("cumulative").print_stats(
        args.only or ".", args.top
    )
    print(out.getvalue())
    times.sort()
    print(f"{args.page} {args.query}: first run {first:.3f} s, profiled runs median "
          f"{times[len(times) // 2]:.3f} s (under the profiler)")  # fmt: skip


if __name__ == "__main__":
    main()
