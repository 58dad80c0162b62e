"""A real PostgreSQL server for the tests and benches: started in a temp dir, stopped and removed.

    with PgServer() as pg:                       # initdb + start: ~1–2 s
        pg.create_database("erp")
        data = load_orders(pg, "erp", n_lines=10_000, n_units=5, seed=1)
        url = pg.url(user=pg.reader, password=pg.reader_password, db="erp")

It uses Debian's `postgresql` package (`/usr/lib/postgresql/<version>/bin`, the newest version
found). PostgreSQL refuses to run as root, so when we are root `initdb` and `pg_ctl` run as the
`postgres` system user (`runuser -u postgres --`) in a temp dir owned by that user. The server
listens only on 127.0.0.1 on a free port; its unix socket is inside the temp dir. Durability is
off (`fsync`, `synchronous_commit`, `full_page_writes`): the data is thrown away at the end.

Authentication: unix-socket connections (which only root and `postgres` can reach) are trusted and
used for set-up (`execute`, `copy_rows`); TCP connections to 127.0.0.1 need a password
(`scram-sha-256`), for the superuser `postgres` and for the login role `kpi_reader`, which may
connect and read (`grant_read`) but owns nothing — so a wrong password is refused as it would be
on a real server.

`load_orders` / `load_orders_sqlite` write the same small ERP-like order schema with the same
deterministic data to PostgreSQL or to a SQLite file and return the data (`Orders`), from which
`Orders.monthly()` computes the expected monthly values independently of any SQL.
"""

from __future__ import annotations

import atexit
import contextlib
import io
import os
import re
import secrets
import shutil
import signal
import socket
import sqlite3
import subprocess
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import numpy as np
import pandas as pd

PG_ROOT = Path("/usr/lib/postgresql")
DEBIAN_PACKAGE = "postgresql"
SYSTEM_USER = "postgres"  # created by the Debian package


# The server runs on the real clock when the suite runs under faketime: it is a server of its
# own, like a production one, and libfaketime's clock breaks its timers (a statement_timeout
# that never fires).
_REAL_CLOCK = {
    k: v for k, v in os.environ.items() if k != "LD_PRELOAD" and not k.startswith("FAKETIME")
}


class PgServerError(RuntimeError):
    """The server could not be set up, started or stopped."""


class PgMissingError(PgServerError):
    """PostgreSQL's server binaries are not installed."""


def find_bin_dir(root: Path | None = None) -> Path:
    """The newest `/usr/lib/postgresql/<version>/bin` that has initdb, pg_ctl and postgres."""
    root = PG_ROOT if root is None else root
    found = []
    for d in root.glob("*/bin") if root.is_dir() else []:
        version = d.parent.name
        if re.fullmatch(r"\d+(\.\d+)*", version) and all(
            (d / b).is_file() for b in ("initdb", "pg_ctl", "postgres")
        ):
            found.append((tuple(int(p) for p in version.split(".")), d))
    if not found:
        raise PgMissingError(
            f"PostgreSQL's server binaries are not installed (no {root}/<version>/bin/initdb). "
            f"The database-source tests start a real PostgreSQL server: install Debian's "
            f"'{DEBIAN_PACKAGE}' package (apt-get install -y {DEBIAN_PACKAGE}), as .ci/run does."
        )
    return max(found)[1]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(1.0)
        return s.connect_ex((host, port)) == 0


class PgServer:
    """One throw-away PostgreSQL cluster. `start()` returns self; `stop()` is idempotent and
    always removes the temp dir. Use it as a context manager where possible."""

    superuser = SYSTEM_USER

    def __init__(
        self,
        *,
        reader: str = "kpi_reader",
        start_timeout: float = 60.0,
        stop_timeout: float = 30.0,
        bin_dir: Path | None = None,
        settings: dict[str, str] | None = None,
    ):
        self.reader = reader
        self.password = secrets.token_urlsafe(12)  # the superuser's
        self.reader_password = secrets.token_urlsafe(12)
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self._bin_dir = bin_dir
        self._settings = settings or {}
        self.port: int | None = None
        self.dir: Path | None = None
        self._running = False

    # -- paths and commands ------------------------------------------------------------------

    @property
    def data_dir(self) -> Path:
        return self.dir / "data"

    @property
    def socket_dir(self) -> Path:
        return self.dir / "sock"

    @property
    def log_path(self) -> Path:
        return self.dir / "server.log"

    def _as_owner(self, argv: list[str]) -> list[str]:
        return ["runuser", "-u", SYSTEM_USER, "--", *argv] if os.geteuid() == 0 else argv

    def _run(self, argv: list[str], timeout: float) -> subprocess.CompletedProcess:
        try:
            return subprocess.run(
                self._as_owner(argv), cwd=self.dir, stdin=subprocess.DEVNULL,
                capture_output=True, text=True, timeout=timeout, env=_REAL_CLOCK,
            )  # fmt: skip
        except subprocess.TimeoutExpired as exc:
            raise PgServerError(f"{Path(argv[0]).name} took more than {timeout:.0f} s") from exc

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except (OSError, TypeError):
            return ""

    # -- life cycle --------------------------------------------------------------------------

    def start(self) -> PgServer:
        if self._running:
            return self
        bin_dir = self._bin_dir or find_bin_dir()
        self._bin = bin_dir
        if os.geteuid() == 0:
            try:
                import pwd

                owner = pwd.getpwnam(SYSTEM_USER)
            except KeyError as exc:
                raise PgMissingError(
                    f"There is no '{SYSTEM_USER}' system user to run PostgreSQL as (root may "
                    f"not): install Debian's '{DEBIAN_PACKAGE}' package, which creates it."
                ) from exc
        self.dir = Path(tempfile.mkdtemp(prefix="kpi_pg_"))
        atexit.register(self.stop)
        try:
            self.socket_dir.mkdir()
            pwfile = self.dir / "pw"
            pwfile.write_text(self.password + "\n")
            if os.geteuid() == 0:
                for p in (self.dir, self.socket_dir, pwfile):
                    os.chown(p, owner.pw_uid, owner.pw_gid)
            r = self._run(
                [
                    str(bin_dir / "initdb"), "-D", str(self.data_dir), "-U", self.superuser,
                    f"--pwfile={pwfile}", "--auth-local=trust", "--auth-host=scram-sha-256",
                    "-E", "UTF8", "--no-locale", "--no-sync", "--no-instructions",
                ],
                timeout=self.start_timeout,
            )  # fmt: skip
            pwfile.unlink()
            if r.returncode:
                raise PgServerError(f"initdb failed ({r.returncode}): {r.stderr.strip()[-2000:]}")
            self._configure()
            deadline = time.monotonic() + self.start_timeout
            for attempt in range(3):  # another process may take the free port first
                self.port = free_port()
                left = max(5.0, deadline - time.monotonic())
                r = self._run(
                    [
                        str(bin_dir / "pg_ctl"), "start", "-D", str(self.data_dir), "-w",
                        "-t", str(int(left)), "-l", str(self.log_path), "-o", f"-p {self.port}",
                    ],
                    timeout=left + 5,
                )  # fmt: skip
                if r.returncode == 0:
                    break
                if attempt == 2 or "already in use" not in self.log_tail():
                    raise PgServerError(
                        f"pg_ctl start failed ({r.returncode}): {r.stderr.strip()}\n"
                        f"server log:\n{self.log_tail()}"
                    )
            self._running = True
            self._set_up_roles()
        except BaseException:
            self.stop()
            raise
        return self

    def _configure(self) -> None:
        settings = {
            "listen_addresses": "'127.0.0.1'",
            "unix_socket_directories": f"'{self.socket_dir}'",
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "max_connections": "40",
            "shared_buffers": "128MB",
            "max_wal_size": "2GB",
            "checkpoint_timeout": "30min",
            "password_encryption": "'scram-sha-256'",
            "logging_collector": "off",
            "log_min_messages": "warning",
            "timezone": "'UTC'",
            **self._settings,
        }
        conf = self.data_dir / "postgresql.conf"
        with conf.open("a") as fh:
            fh.write("\n# kpi tests\n" + "".join(f"{k} = {v}\n" for k, v in settings.items()))
        (self.data_dir / "pg_hba.conf").write_text(
            "# TYPE  DATABASE  USER  ADDRESS       METHOD\n"
            "local   all       all                 trust\n"
            "host    all       all   127.0.0.1/32  scram-sha-256\n"
        )

    def _set_up_roles(self) -> None:
        from psycopg import sql

        self.execute(
            sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                sql.Identifier(self.reader), sql.Literal(self.reader_password)
            )
        )

    def stop(self) -> None:
        """Stop the server (fast, then immediate, then SIGKILL) and remove the temp dir."""
        atexit.unregister(self.stop)
        if self.dir is None:
            return
        try:
            if (self.data_dir / "postmaster.pid").exists():
                for mode in ("fast", "immediate"):
                    with contextlib.suppress(PgServerError):
                        r = self._run(
                            [
                                str(self._bin / "pg_ctl"), "stop", "-D", str(self.data_dir),
                                "-m", mode, "-w", "-t", str(int(self.stop_timeout)),
                            ],
                            timeout=self.stop_timeout + 5,
                        )  # fmt: skip
                        if r.returncode == 0:
                            break
                else:
                    self._kill()
        finally:
            self._running = False
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    def _kill(self) -> None:
        """Last resort: SIGKILL the postmaster this object started (its pid file names it)."""
        try:
            pid = int((self.data_dir / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)

    def __enter__(self) -> PgServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._running

    # -- connecting --------------------------------------------------------------------------

    def url(
        self, user: str | None = None, password: str | None = None, db: str = "postgres"
    ) -> str:
        """A SQLAlchemy URL over TCP: `postgresql+psycopg://user:pw@127.0.0.1:PORT/db`.
        The user defaults to the superuser; the password to that user's. A placeholder such as
        `password="${PG_PASSWORD}"` is kept as written (sources store URLs that way)."""
        user = user or self.superuser
        if password is None:
            password = {self.superuser: self.password, self.reader: self.reader_password}.get(
                user, ""
            )
        if password and not re.fullmatch(r"\$\{[^}]+\}", password):  # keep ${ENV} as it is
            password = quote(password, safe="")
        auth = quote(user, safe="") + (":" + password if password else "")
        return f"postgresql+psycopg://{auth}@127.0.0.1:{self.port}/{quote(db, safe='')}"

    def dsn(
        self, user: str | None = None, password: str | None = None, db: str = "postgres"
    ) -> str:
        """The same connection as `url()` as a libpq conninfo string, for psycopg.connect."""
        from psycopg.conninfo import make_conninfo

        user = user or self.superuser
        if password is None:
            password = {self.superuser: self.password, self.reader: self.reader_password}.get(
                user, ""
            )
        return make_conninfo(
            host="127.0.0.1", port=self.port, user=user, password=password, dbname=db
        )

    def connect(self, db: str = "postgres", *, autocommit: bool = True, **kwargs):
        """A psycopg connection as the superuser over the unix socket (trusted)."""
        import psycopg

        if not self._running:
            raise PgServerError("the server is not running")
        return psycopg.connect(
            host=str(self.socket_dir), port=self.port, user=self.superuser, dbname=db,
            autocommit=autocommit, **kwargs,
        )  # fmt: skip

    def execute(self, sql, params: Sequence | None = None, db: str = "postgres") -> list[tuple]:
        """Run one statement as the superuser (autocommit); the rows it returns, if any."""
        with self.connect(db) as con:
            cur = con.execute(sql, params)
            return cur.fetchall() if cur.description else []

    def create_database(self, name: str, *, drop: bool = False) -> None:
        from psycopg import sql

        if drop:
            self.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(name)))  # fmt: skip
        self.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))

    def grant_read(self, db: str, user: str | None = None, schema: str = "public") -> None:
        """Let `user` (default the reader role) SELECT every table now in `schema`."""
        from psycopg import sql

        who, sch = sql.Identifier(user or self.reader), sql.Identifier(schema)
        with self.connect(db) as con:
            con.execute(sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(sch, who))
            con.execute(sql.SQL("GRANT SELECT ON ALL TABLES IN SCHEMA {} TO {}").format(sch, who))

    def copy_rows(
        self,
        table: str,
        columns: Sequence[str],
        rows: Iterable[Sequence] | pd.DataFrame,
        db: str = "postgres",
        *,
        chunk_rows: int = 200_000,
    ) -> int:
        """Bulk-load rows with COPY … FROM STDIN; returns the count. A DataFrame (its `columns`,
        in that order) goes as CSV text, `chunk_rows` rows at a time — the fast path for a
        million rows; any other iterable of tuples goes row by row (`Copy.write_row`)."""
        from psycopg import sql

        cols = sql.SQL(", ").join(sql.Identifier(c) for c in columns)
        target = sql.SQL(".").join(sql.Identifier(p) for p in table.split("."))
        n = 0
        with self.connect(db, autocommit=False) as con, con.cursor() as cur:
            if isinstance(rows, pd.DataFrame):
                stmt = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT csv)").format(target, cols)
                with cur.copy(stmt) as copy:
                    for start in range(0, len(rows), chunk_rows):
                        part = rows.iloc[start : start + chunk_rows][list(columns)]
                        buf = io.StringIO()
                        part.to_csv(buf, header=False, index=False, date_format="%Y-%m-%d %H:%M:%S")
                        copy.write(buf.getvalue())
                        n += len(part)
            else:
                stmt = sql.SQL("COPY {} ({}) FROM STDIN").format(target, cols)
                with cur.copy(stmt) as copy:
                    for row in rows:
                        copy.write_row(row)
                        n += 1
            con.commit()
        return n


# ---------------------------------------------------------------------------------------------
# An ERP-like order schema with deterministic data


# Stored as `real` (float4), as ERP schemas often do. Binary fractions, so that float4 holds them
# exactly and every path sees the same number: with 0.15 the column would hold 0.15000000596,
# which PostgreSQL's own arithmetic uses while a driver reading the text '0.15' gets 0.15 — sums
# that differ in the 8th digit.
DISCOUNTS = np.array([0, 0, 0, 0, 0.03125, 0.0625, 0.125, 0.25], dtype=np.float32)
EMPLOYEES_PER_REGION = 4
CUSTOMERS_PER_REGION = 20
PRODUCTS = 200

# The same tables in both dialects (SQLite keeps timestamps as ISO text, 'YYYY-MM-DD HH:MM:SS').
SCHEMA = {
    "customers": [
        ("customer_id", "integer PRIMARY KEY"), ("name", "text NOT NULL"),
        ("region", "text NOT NULL"),
    ],
    "employees": [
        ("employee_id", "integer PRIMARY KEY"), ("name", "text NOT NULL"),
        ("region", "text NOT NULL"),
    ],
    "orders": [
        ("order_id", "integer PRIMARY KEY"), ("order_date", "timestamp NOT NULL"),
        ("required_date", "timestamp NOT NULL"), ("shipped_date", "timestamp"),
        ("customer_id", "integer NOT NULL"), ("employee_id", "integer NOT NULL"),
        ("region", "text NOT NULL"), ("freight", "numeric(10,2) NOT NULL"),
    ],
    "order_lines": [
        ("order_id", "integer NOT NULL"), ("line_no", "integer NOT NULL"),
        ("product_id", "integer NOT NULL"), ("unit_price", "numeric(10,2) NOT NULL"),
        ("quantity", "integer NOT NULL"), ("discount", "real NOT NULL"),
    ],
}  # fmt: skip
PRIMARY_KEYS = {"order_lines": "order_id, line_no"}

# Raw order lines with what the monthly KPIs need (the bench's and the tests' source query).
LINES_QUERY = (
    "SELECT o.order_id, o.order_date, o.region, o.employee_id, l.unit_price, l.quantity, "
    "l.discount FROM order_lines l JOIN orders o ON o.order_id = l.order_id"
)

# Revenue per month × region, grouped in PostgreSQL (an independent check of a pull).
MONTHLY_REVENUE_PG = (
    "SELECT date_trunc('month', o.order_date)::date AS month, o.region, "
    "sum(l.unit_price * l.quantity * (1 - l.discount)) AS revenue, "
    "count(DISTINCT o.order_id) AS orders "
    "FROM order_lines l JOIN orders o ON o.order_id = l.order_id GROUP BY 1, 2 ORDER BY 1, 2"
)


def region_codes(n_units: int) -> list[str]:
    return [f"R{i:02d}" for i in range(1, n_units + 1)]


@dataclass
class Orders:
    """What `load_orders` wrote, as loaded: prices as floats of their exact cents, discounts
    as float64 (binary fractions, exact in the `real` column)."""

    regions: list[str]
    customers: pd.DataFrame
    employees: pd.DataFrame
    orders: pd.DataFrame  # order_date etc. as datetime64 (NaT: not shipped)
    lines: pd.DataFrame

    @property
    def months(self) -> list[pd.Timestamp]:
        return sorted(self.orders["order_date"].dt.to_period("M").dt.to_timestamp().unique())

    def monthly(self) -> pd.DataFrame:
        """Expected values per (month, region), months as first-of-month Timestamps, computed
        with pandas from the generated data (not from any database):

        revenue             Σ unit_price × quantity × (1 − discount) of the month's order lines
        lines, orders       order lines, distinct orders
        shipped, on_time    orders shipped; of those, shipped on or before the required date
        on_time_rate        on_time ÷ shipped (NaN when nothing shipped)
        employees           distinct employees who took the month's orders
        orders_per_employee orders ÷ employees
        freight             Σ freight of the month's orders

        The month of a line or order is its order_date's month. Sums computed elsewhere differ
        only by the order of addition: compare revenue with a relative tolerance of ~1e-9.
        """
        o = self.orders
        month = o["order_date"].dt.to_period("M").dt.to_timestamp()
        shipped = o["shipped_date"].notna()
        per_order = pd.DataFrame(
            {
                "month": month,
                "region": o["region"],
                "order_id": o["order_id"],
                "employee_id": o["employee_id"],
                "shipped": shipped.astype(int),
                "on_time": (shipped & (o["shipped_date"] <= o["required_date"])).astype(int),
                "freight": o["freight"],
            }
        )
        by_order = per_order.groupby(["month", "region"]).agg(
            orders=("order_id", "nunique"),
            shipped=("shipped", "sum"),
            on_time=("on_time", "sum"),
            employees=("employee_id", "nunique"),
            freight=("freight", "sum"),
        )
        li = self.lines.merge(per_order[["order_id", "month", "region"]], on="order_id")
        li["revenue"] = li["unit_price"] * li["quantity"] * (1.0 - li["discount"])
        by_line = li.groupby(["month", "region"]).agg(
            revenue=("revenue", "sum"), lines=("order_id", "size")
        )
        out = by_line.join(by_order, how="outer")
        out["on_time_rate"] = out["on_time"] / out["shipped"].where(out["shipped"] > 0)
        out["orders_per_employee"] = out["orders"] / out["employees"]
        return out[
            ["revenue", "lines", "orders", "shipped", "on_time", "on_time_rate", "employees",
             "orders_per_employee", "freight"]
        ]  # fmt: skip


def month_range(months: tuple[str, str]) -> tuple[pd.Timestamp, pd.Timestamp]:
    """('2024-01', '2026-10') → [2024-01-01, 2026-11-01): the span order dates fall in."""
    first = pd.Timestamp(months[0] + "-01")
    end = pd.Timestamp(months[1] + "-01") + pd.offsets.MonthBegin(1)
    if end <= first:
        raise ValueError(f"months {months}: the last month is before the first")
    return first, end


def generate_orders(
    n_lines: int, n_units: int, seed: int = 1, months: tuple[str, str] = ("2024-01", "2026-10")
) -> Orders:
    """Deterministic data: the same arguments give the same rows (numpy's PCG64 generator).
    Orders are numbered in date order; each has 1–8 lines; a region is a unit."""
    if n_lines < 1 or n_units < 1:
        raise ValueError("n_lines and n_units must be at least 1")
    rng = np.random.default_rng(seed)
    regions = np.array(region_codes(n_units), dtype=object)
    first, end = month_range(months)

    n_emp = n_units * EMPLOYEES_PER_REGION
    employees = pd.DataFrame(
        {
            "employee_id": np.arange(1, n_emp + 1),
            "name": [f"Employee {i}" for i in range(1, n_emp + 1)],
            "region": np.repeat(regions, EMPLOYEES_PER_REGION),
        }
    )
    n_cust = n_units * CUSTOMERS_PER_REGION
    customers = pd.DataFrame(
        {
            "customer_id": np.arange(1, n_cust + 1),
            "name": [f"Customer {i}" for i in range(1, n_cust + 1)],
            "region": np.repeat(regions, CUSTOMERS_PER_REGION),
        }
    )

    # Lines per order: 1–8, the last order cut so the total is exactly n_lines.
    per = rng.integers(1, 9, size=n_lines // 4 + 16)
    while per.sum() < n_lines:
        per = np.concatenate([per, rng.integers(1, 9, size=n_lines // 4 + 16)])
    cum = np.cumsum(per)
    n_orders = int(np.searchsorted(cum, n_lines) + 1)
    per = per[:n_orders].copy()
    per[-1] -= int(cum[n_orders - 1] - n_lines)

    # Regions of unequal size (some units sell far more than others), every region used.
    weight = rng.gamma(2.0, 1.0, size=n_units) + 0.2
    region_ix = rng.choice(n_units, size=n_orders, p=weight / weight.sum())
    region_ix[: min(n_units, n_orders)] = np.arange(min(n_units, n_orders))
    rng.shuffle(region_ix)
    span = int((end - first).total_seconds())
    secs = np.sort(rng.integers(0, span, size=n_orders))
    order_date = first + pd.to_timedelta(secs, unit="s")
    required = order_date + pd.to_timedelta(rng.integers(7, 31, size=n_orders), unit="D")
    shipped = order_date + pd.to_timedelta(
        rng.integers(1, 30 * 24, size=n_orders) * 3600 + rng.integers(0, 3600, size=n_orders),
        unit="s",
    )
    shipped = shipped.where(rng.random(n_orders) >= 0.03)  # 3 % not shipped yet
    orders = pd.DataFrame(
        {
            "order_id": np.arange(1, n_orders + 1),
            "order_date": order_date,
            "required_date": required,
            "shipped_date": shipped,
            "customer_id": region_ix * CUSTOMERS_PER_REGION
            + rng.integers(1, CUSTOMERS_PER_REGION + 1, size=n_orders),
            "employee_id": region_ix * EMPLOYEES_PER_REGION
            + rng.integers(1, EMPLOYEES_PER_REGION + 1, size=n_orders),
            "region": regions[region_ix],
            "freight": rng.integers(500, 50_000, size=n_orders) / 100,
        }
    )

    price_cents = rng.integers(500, 50_000, size=PRODUCTS + 1)  # list price per product
    product = rng.integers(1, PRODUCTS + 1, size=n_lines)
    order_of_line = np.repeat(orders["order_id"].to_numpy(), per)
    starts = np.concatenate([[0], np.cumsum(per)[:-1]])
    line_no = np.arange(n_lines) - np.repeat(starts, per) + 1
    lines = pd.DataFrame(
        {
            "order_id": order_of_line,
            "line_no": line_no,
            "product_id": product,
            "unit_price": price_cents[product] / 100,
            "quantity": rng.integers(1, 51, size=n_lines),
            "discount": DISCOUNTS[rng.integers(0, len(DISCOUNTS), size=n_lines)].astype(np.float64),
        }
    )
    return Orders(list(regions), customers, employees, orders, lines)


def _ddl(table: str, dialect: str) -> str:
    cols = []
    for name, typ in SCHEMA[table]:
        if dialect == "sqlite" and typ.startswith("timestamp"):
            typ = "text" + typ[len("timestamp") :]
        cols.append(f"{name} {typ}")
    if table in PRIMARY_KEYS and dialect == "sqlite":
        cols.append(f"PRIMARY KEY ({PRIMARY_KEYS[table]})")
    return f"CREATE TABLE {table} ({', '.join(cols)})"


def _frames(data: Orders) -> dict[str, pd.DataFrame]:
    return {
        "customers": data.customers,
        "employees": data.employees,
        "orders": data.orders,
        "order_lines": data.lines,
    }


def load_orders(
    server: PgServer,
    db: str,
    n_lines: int,
    n_units: int,
    seed: int = 1,
    months: tuple[str, str] = ("2024-01", "2026-10"),
    *,
    data: Orders | None = None,
) -> Orders:
    """Create the order schema in `db` (which must exist; existing tables of these names are
    dropped), COPY the generated data in, add keys, ANALYZE, let the reader role SELECT it.
    1,000,000 lines take ~10 s. Pass `data` to load rows generated before."""
    data = data or generate_orders(n_lines, n_units, seed, months)
    with server.connect(db) as con:
        for table in SCHEMA:
            con.execute(f"DROP TABLE IF EXISTS {table} CASCADE")
            con.execute(_ddl(table, "postgres").replace(" PRIMARY KEY", ""))
    for table, frame in _frames(data).items():
        server.copy_rows(table, [c for c, _ in SCHEMA[table]], frame, db)
    with server.connect(db) as con:
        for table, _ in SCHEMA.items():
            key = PRIMARY_KEYS.get(table, SCHEMA[table][0][0])
            con.execute(f"ALTER TABLE {table} ADD PRIMARY KEY ({key})")
        con.execute("CREATE INDEX orders_date ON orders (order_date)")
        con.execute("ANALYZE")
    server.grant_read(db)
    return data


def load_orders_sqlite(
    path: str | os.PathLike,
    n_lines: int,
    n_units: int,
    seed: int = 1,
    months: tuple[str, str] = ("2024-01", "2026-10"),
    *,
    data: Orders | None = None,
) -> Orders:
    """The same tables and rows in a SQLite file (replaced if it exists). Timestamps are ISO
    text ('2024-03-05 14:02:11'); prices and discounts are stored as REAL values."""
    data = data or generate_orders(n_lines, n_units, seed, months)
    path = Path(path)
    for p in (path, Path(str(path) + "-journal"), Path(str(path) + "-wal")):
        p.unlink(missing_ok=True)
    con = sqlite3.connect(path)
    try:
        con.execute("PRAGMA journal_mode = OFF")
        con.execute("PRAGMA synchronous = OFF")
        for table, frame in _frames(data).items():
            con.execute(_ddl(table, "sqlite"))
            cols = [c for c, _ in SCHEMA[table]]
            out = frame[cols].copy()
            for c in cols:
                if pd.api.types.is_datetime64_any_dtype(out[c]):
                    out[c] = out[c].dt.strftime("%Y-%m-%d %H:%M:%S")
            out = out.astype(object).where(out.notna(), None)
            marks = ", ".join("?" * len(cols))
            con.executemany(
                f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({marks})",
                out.itertuples(index=False, name=None),
            )
        con.execute("CREATE INDEX orders_date ON orders (order_date)")
        con.commit()
    finally:
        con.close()
    return data
