"""Serving the app from several processes behind one port: N Streamlit processes and nginx.

    python -m kpi_core.serving --processes 2 --port 8501 [--warehouse PATH]

Why not `uvicorn --workers N app:app`: a Streamlit session lives in one process (its WebSocket,
its uploaded files, its media and download URLs), and uvicorn's workers share one socket, so
each new connection goes to any worker. A session's WebSocket stays put, but its file upload
(`PUT /_stcore/upload_file/<session>/…`) and downloads are requests of their own on other
connections: on another worker they fail. So each process gets its own port on 127.0.0.1 and
nginx, in front, sends every request of a browser to the same process: by the sign-in cookie
(`kpi_session`), or by the client's address before signing in (and on a warehouse without
users). The sign-in itself is in the warehouse (kpi_core/sessions.py), so any process accepts
the cookie: a browser moved to another process (a process restarted, the cookie changed at
sign-in) stays signed in and only starts a new Streamlit session. All processes get the same
`server.cookieSecret` (Streamlit's XSRF cookie is signed with it): `KPI_COOKIE_SECRET`, else a
random one per start. The processes share the warehouse as kpi_core/shared_file.py describes.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from kpi_core import settings

ROOT = Path(__file__).resolve().parent.parent
AFFINITY_COOKIE = "kpi_session"  # kpi_core.sessions.COOKIE

NGINX_CONF = """\
{user}worker_processes 1;
pid {folder}/nginx.pid;
error_log {folder}/nginx-error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {folder}/body;
    proxy_temp_path {folder}/proxy;
    fastcgi_temp_path {folder}/fastcgi;
    uwsgi_temp_path {folder}/uwsgi;
    scgi_temp_path {folder}/scgi;
    client_max_body_size {max_upload_mb}m;
    # Every request of a browser to one process: by the sign-in cookie, else by its address.
    map $cookie_{cookie} $kpi_affinity {{
        "" $remote_addr;
        default $cookie_{cookie};
    }}
    map $http_upgrade $kpi_connection {{
        default upgrade;
        "" close;
    }}
    upstream kpi {{
        hash $kpi_affinity consistent;
{servers}
    }}
    server {{
        listen {address}:{port};
        location / {{
            proxy_pass http://kpi;
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $kpi_connection;
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-Host $http_host;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_read_timeout 1d;
            proxy_send_timeout 1d;
            proxy_buffering off;
            proxy_request_buffering off;
        }}
    }}
}}
"""


def nginx_conf(folder: Path, port: int, backends: list[int], *, address: str = "0.0.0.0") -> str:
    servers = "\n".join(f"        server 127.0.0.1:{p} max_fails=0;" for p in backends)
    user = "user root;\n" if hasattr(os, "geteuid") and os.geteuid() == 0 else ""
    return NGINX_CONF.format(
        user=user, folder=folder, port=port, address=address, servers=servers,
        cookie=AFFINITY_COOKIE, max_upload_mb=200,
    )  # fmt: skip


def wait_healthy(port: int, proc: subprocess.Popen, log: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2):
                return
        except OSError:
            if proc.poll() is not None:
                break
            time.sleep(0.2)
    proc.kill()
    raise SystemExit(f"the process on port {port} did not start; see {log}")


def start_app(
    port: int, log: Path, *, app_dir: Path = ROOT, env: dict[str, str] | None = None
) -> subprocess.Popen:
    """One `streamlit run app.py` on 127.0.0.1:`port` (not yet waited for)."""
    return subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
         "--server.address", "127.0.0.1", "--server.headless", "true"],
        cwd=app_dir, env=settings.environment(env), stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )  # fmt: skip


def start_nginx(folder: Path, port: int, backends: list[int], address: str) -> subprocess.Popen:
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(nginx).exists():
        raise SystemExit("nginx is not installed (apt-get install nginx-light)")
    conf = folder / "nginx.conf"
    conf.write_text(nginx_conf(folder, port, backends, address=address))
    proc = subprocess.Popen(
        [nginx, "-p", str(folder), "-c", str(conf), "-g", "daemon off;"],
        stdout=(folder / "nginx.log").open("w"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2):
                return proc
        except OSError:
            if proc.poll() is not None:
                break
            time.sleep(0.1)
    proc.kill()
    raise SystemExit(f"nginx did not start; see {folder}/nginx-error.log")


class Cluster:
    """N app processes and, for more than one, nginx in front of them on `port`."""

    def __init__(
        self,
        processes: int,
        port: int,
        *,
        folder: Path,
        app_dir: Path | list[Path] = ROOT,
        env: dict[str, str] | None = None,
        address: str = "0.0.0.0",
    ):
        # A list: process i runs from folder i, as on a machine of its own (bench/load.py).
        dirs = app_dir if isinstance(app_dir, list) else [app_dir] * processes
        self.folder, self.port = folder, port
        secret = settings.env("KPI_COOKIE_SECRET") or secrets.token_hex(32)
        env = {**(env or {}), "STREAMLIT_SERVER_COOKIE_SECRET": secret}
        # One process serves the port itself; several sit on the ports after it.
        self.ports = [port] if processes == 1 else [port + 1 + i for i in range(processes)]
        self.apps: list[subprocess.Popen] = []
        self.nginx: subprocess.Popen | None = None
        try:
            # The demo of a new warehouse is made once, before the processes race to make it.
            subprocess.run(
                [sys.executable, "-m", "kpi_core", "init", "--demo"], cwd=ROOT, check=True,
                env=settings.environment(env), stdout=subprocess.DEVNULL,
            )  # fmt: skip
            for i, p in enumerate(self.ports):
                log = folder / f"app-{i + 1}.log"
                self.apps.append(start_app(p, log, app_dir=dirs[i], env=env))
            for p, proc in zip(self.ports, self.apps, strict=True):
                wait_healthy(p, proc, folder / f"app-{self.ports.index(p) + 1}.log")
            if processes > 1:
                self.nginx = start_nginx(folder, port, self.ports, address)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        for proc in [*([self.nginx] if self.nginx else []), *self.apps]:
            if proc.poll() is None:
                proc.terminate()
        for proc in [*([self.nginx] if self.nginx else []), *self.apps]:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Serve the app from several processes on one port.")
    p.add_argument("--processes", type=int, default=2)
    p.add_argument("--port", type=int, default=8501)
    p.add_argument("--address", default="0.0.0.0", help="where nginx listens")
    p.add_argument(
        "--warehouse", help="the DuckDB file or PostgreSQL URL (else KPI_WAREHOUSE, secrets.toml)"
    )
    args = p.parse_args(argv)
    env = {"KPI_WAREHOUSE": args.warehouse} if args.warehouse else {}
    folder = Path(tempfile.mkdtemp(prefix="kpi-serve-"))
    cluster = Cluster(args.processes, args.port, folder=folder, env=env, address=args.address)
    print(
        f"serving on port {args.port}: {args.processes} process(es) {cluster.ports}; logs {folder}"
    )
    stopped = []
    signal.signal(signal.SIGTERM, lambda *_: stopped.append(True))
    try:
        while not stopped and all(a.poll() is None for a in cluster.apps):
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        cluster.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
