"""Backup and restore of the whole warehouse, while the app runs.

A backup is a zip file holding `manifest.json` and `warehouse.duckdb`, a DuckDB copy of every
table and sequence taken in one read transaction (`COPY FROM DATABASE`), so it never holds half
of a write. The manifest records the schema version, each table's row count and content checksum
(the sum of its rows' hashes: order-free, counts duplicates), each sequence's last value, the
copy's SHA-256, when and by whom.

Restoring checks all of that on a scratch copy before the warehouse is touched, refuses a backup
from a newer schema, migrates an older one, then puts the copy in the warehouse's place in one
step (`Warehouse.replace_file`), keeping the replaced file as `<warehouse>.before-restore`.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
import zipfile
import zlib
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

import duckdb

from kpi_core import sessions
from kpi_core.errors import KpiError, NotFoundError, ScopeError
from kpi_core.migrations import MIGRATIONS
from kpi_core.references import read_secrets
from kpi_core.service import Actor
from kpi_core.warehouse import SECRETS_PATH, Warehouse

FORMAT = "kpi-monitor-backup"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
DATA = "warehouse.duckdb"
PREFIX = "kpi-backup-"
SUFFIX = ".zip"
LATEST_SCHEMA = max(v for v, _, _ in MIGRATIONS)
_CHUNK = 1 << 20


class BackupError(KpiError):
    """A backup cannot be written, or a file is not a sound backup of this product."""


@dataclass(frozen=True)
class Manifest:
    schema_version: int
    created_at: str
    created_by: str
    duckdb_version: str
    sha256: str
    tables: dict[str, dict] = field(default_factory=dict)  # name -> {"rows", "checksum"}
    sequences: dict[str, int | None] = field(default_factory=dict)
    format: str = FORMAT
    format_version: int = FORMAT_VERSION

    @property
    def rows(self) -> int:
        return sum(t["rows"] for t in self.tables.values())

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False, indent=2, sort_keys=True)


@dataclass(frozen=True)
class BackupResult:
    path: Path
    manifest: Manifest
    removed: list[Path]


@dataclass(frozen=True)
class RestoreResult:
    manifest: Manifest
    kept_as: Path
    migrated_from: int | None  # the backup's schema version when it had to be migrated


@dataclass(frozen=True)
class Settings:
    """`[backup] dir = "...", keep = N` in secrets.toml; the directory defaults to
    `backups/` next to the warehouse, keep to all."""

    directory: Path
    keep: int | None


def settings(wh: Warehouse) -> Settings:
    conf = read_secrets().get("backup", {})
    raw = conf.get("dir")
    if raw:
        directory = Path(raw)
        if not directory.is_absolute():
            directory = SECRETS_PATH.parent.parent / directory
    else:
        base = Path.cwd() if wh.in_memory else Path(wh.path).resolve().parent
        directory = base / "backups"
    keep = conf.get("keep")
    if keep is not None and (not isinstance(keep, int) or keep < 1):
        raise BackupError(f"[backup] keep = {keep!r} in secrets.toml must be a whole number ≥ 1.")
    return Settings(directory, keep)


def _admin(who: Actor, what: str) -> None:
    if who.role != "admin":
        raise ScopeError(f"Only admins {what}.")


def _tables(cur: duckdb.DuckDBPyConnection, database: str) -> list[str]:
    return [
        r[0]
        for r in cur.execute(
            "SELECT table_name FROM duckdb_tables() WHERE database_name = ? AND NOT temporary "
            "ORDER BY table_name",
            [database],
        ).fetchall()
    ]


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def contents(cur: duckdb.DuckDBPyConnection, database: str) -> dict[str, dict]:
    """Row count and checksum of every table of `database`, as the cursor's transaction sees it."""
    out = {}
    for table in _tables(cur, database):
        # Identifiers cannot be bound; these come from the catalog and are quoted.
        rows, checksum = cur.execute(
            f"SELECT count(*), coalesce(sum(hash(kpi_row_)), 0)::VARCHAR "  # noqa: S608
            f"FROM {_quote(database)}.main.{_quote(table)} AS kpi_row_"
        ).fetchone()
        out[table] = {"rows": int(rows), "checksum": checksum}
    return out


def _sequences(cur: duckdb.DuckDBPyConnection, database: str) -> dict[str, int | None]:
    return {
        name: (None if last is None else int(last))
        for name, last in cur.execute(
            "SELECT sequence_name, last_value FROM duckdb_sequences() WHERE database_name = ? "
            "ORDER BY 1",
            [database],
        ).fetchall()
    }


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _inspect(path: Path) -> tuple[dict[str, dict], dict[str, int | None], int]:
    """Tables, sequences and schema version of a closed DuckDB file."""
    try:
        con = duckdb.connect(str(path), read_only=True)
    except duckdb.Error as exc:
        raise BackupError(f"The database in the backup cannot be opened: {exc}") from exc
    try:
        db = con.execute("SELECT current_database()").fetchone()[0]
        if "schema_version" not in _tables(con, db):
            raise BackupError("The backup holds no KPI Monitor warehouse (no schema_version).")
        version = con.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchone()
        return contents(con, db), _sequences(con, db), int(version[0])
    except duckdb.Error as exc:
        raise BackupError(f"The database in the backup cannot be read: {exc}") from exc
    finally:
        con.close()


def _target(dest: str | os.PathLike, now: datetime) -> Path:
    dest = Path(dest)
    if dest.is_dir() or dest.suffix.lower() != SUFFIX:
        return dest / f"{PREFIX}{now:%Y%m%d-%H%M%S-%f}{SUFFIX}"
    return dest


def backup(
    wh: Warehouse, dest: str | os.PathLike, who: Actor, *, keep: int | None = None
) -> BackupResult:
    """Write a backup to `dest` (a `.zip` file, or a directory to name one in); with `keep`,
    then delete the oldest backups in that directory beyond `keep`."""
    _admin(who, "make backups")
    if keep is not None and keep < 1:
        raise BackupError(f"keep must be at least 1, not {keep}.")
    now = datetime.now()
    target = _target(dest, now)
    if target.exists():
        raise BackupError(f"{target} already exists — name another file or give a directory.")
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = target.parent / f".{target.name}.{uuid.uuid4().hex}"
    scratch.mkdir()
    try:
        copy = scratch / DATA
        alias = f"kpi_backup_{uuid.uuid4().hex}"
        with wh.cursor() as cur:
            source = cur.execute("SELECT current_database()").fetchone()[0]
            cur.execute("ATTACH ? AS " + alias, [str(copy)])
            try:
                cur.execute("BEGIN TRANSACTION")
                try:
                    seen = contents(cur, source)
                    cur.execute(f"COPY FROM DATABASE {_quote(source)} TO {alias}")
                except BaseException:
                    cur.execute("ROLLBACK")
                    raise
                cur.execute("COMMIT")
            finally:
                cur.execute("DETACH " + alias)
        tables, sequences, version = _inspect(copy)
        if tables != seen:
            raise BackupError("The copy differs from the warehouse; no backup was written.")
        manifest = Manifest(
            schema_version=version,
            created_at=now.isoformat(timespec="seconds"),
            created_by=who.name,
            duckdb_version=duckdb.__version__,
            sha256=_sha256(copy),
            tables=tables,
            sequences=sequences,
        )
        partial = scratch / "backup.zip"
        with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as zf:
            zf.writestr(MANIFEST, manifest.to_json())
            zf.write(copy, DATA)
        os.replace(partial, target)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    removed = rotate(target.parent, keep) if keep else []
    with wh.transaction() as cur:
        cur.execute(
            "INSERT INTO audit VALUES (?, ?, 'backup', ?, 'backup', NULL, ?, NULL)",
            [datetime.now(), who.name, target.name,
             f"{manifest.rows} rows, schema {manifest.schema_version}"],
        )  # fmt: skip
        for old in removed:
            cur.execute(
                "INSERT INTO audit VALUES (?, ?, 'backup', ?, 'rotated', ?, NULL, ?)",
                [datetime.now(), who.name, old.name, old.name, f"keep {keep}"],
            )
    return BackupResult(target, manifest, removed)


def read_manifest(path: str | os.PathLike) -> Manifest:
    """The manifest of a backup file, checked for form (not yet against the data)."""
    path = Path(path)
    if not path.is_file():
        raise NotFoundError(f"There is no backup file {path}.")
    try:
        with zipfile.ZipFile(path) as zf:
            names = set(zf.namelist())
            if not {MANIFEST, DATA} <= names:
                raise BackupError(f"{path.name} is not a KPI Monitor backup (no {MANIFEST}).")
            raw = json.loads(zf.read(MANIFEST).decode("utf-8"))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, UnicodeDecodeError, ValueError) as exc:
        raise BackupError(f"{path.name} is damaged or not a backup: {exc}") from exc
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise BackupError(f"{path.name} is not a KPI Monitor backup.")
    if raw.get("format_version", 0) > FORMAT_VERSION:
        raise BackupError(f"{path.name} was written by a newer KPI Monitor; upgrade first.")
    try:
        manifest = Manifest(**raw)
        assert isinstance(manifest.schema_version, int) and isinstance(manifest.tables, dict)
        assert all({"rows", "checksum"} <= set(t) for t in manifest.tables.values())
    except (TypeError, AssertionError) as exc:
        raise BackupError(f"{path.name} has a malformed manifest.") from exc
    return manifest


def _extract(path: Path, manifest: Manifest, into: Path) -> None:
    """The backup's database, checked against the manifest, written to `into`."""
    h = hashlib.sha256()
    try:
        with zipfile.ZipFile(path) as zf, zf.open(DATA) as src, into.open("wb") as out:
            while chunk := src.read(_CHUNK):
                h.update(chunk)
                out.write(chunk)
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError) as exc:  # bad CRC: BadZipFile
        raise BackupError(f"{path.name} is damaged: {exc}") from exc
    if h.hexdigest() != manifest.sha256:
        raise BackupError(f"{path.name} is damaged: its checksum does not match the manifest.")
    tables, sequences, version = _inspect(into)
    if version != manifest.schema_version:
        raise BackupError(f"{path.name}: schema version differs from its manifest.")
    same_engine = manifest.duckdb_version == duckdb.__version__
    for name, want in manifest.tables.items():
        got = tables.get(name)
        if got is None or got["rows"] != want["rows"]:
            raise BackupError(f"{path.name}: table {name} does not match its manifest.")
        # Row hashes are DuckDB's own; another version may hash differently.
        if same_engine and got["checksum"] != want["checksum"]:
            raise BackupError(f"{path.name}: table {name} does not match its checksum.")
    if set(tables) != set(manifest.tables) or sequences != manifest.sequences:
        raise BackupError(f"{path.name}: tables or sequences differ from its manifest.")


def verify(path: str | os.PathLike) -> Manifest:
    """Check a backup completely (manifest, checksum, every table) without restoring it."""
    path = Path(path)
    manifest = read_manifest(path)
    scratch = path.parent / f".{path.name}.verify-{uuid.uuid4().hex}.duckdb"
    try:
        _extract(path, manifest, scratch)
    finally:
        scratch.unlink(missing_ok=True)
        Path(f"{scratch}.wal").unlink(missing_ok=True)
    return manifest


def restore(wh: Warehouse, path: str | os.PathLike, who: Actor) -> RestoreResult:
    """Replace the warehouse by the backup at `path`, after checking all of it."""
    _admin(who, "restore backups")
    path = Path(path)
    manifest = read_manifest(path)
    if manifest.schema_version > LATEST_SCHEMA:
        raise BackupError(
            f"{path.name} is from schema version {manifest.schema_version}, newer than this "
            f"KPI Monitor ({LATEST_SCHEMA}); upgrade it before restoring."
        )
    if wh.in_memory:
        raise BackupError("An in-memory warehouse cannot be restored into; use a file.")
    home = Path(wh.path)
    scratch = home.parent / f".{home.name}.restore-{uuid.uuid4().hex}"
    signed_in = sessions.taken(wh)
    try:
        _extract(path, manifest, scratch)
        migrated_from = None
        if manifest.schema_version < LATEST_SCHEMA:
            migrated_from = manifest.schema_version
            fresh = Warehouse(scratch, linger=0)  # migrates on opening
            fresh.close()
        kept = Path(f"{home}.before-restore")
        wh.replace_file(scratch, kept)
    finally:
        scratch.unlink(missing_ok=True)
        Path(f"{scratch}.wal").unlink(missing_ok=True)
    note = f"backup of {manifest.created_at} by {manifest.created_by}"
    if migrated_from is not None:
        note += f", migrated from schema {migrated_from}"
    with wh.transaction() as cur:
        cur.execute(
            "INSERT INTO audit VALUES (?, ?, 'backup', ?, 'restore', NULL, ?, ?)",
            [datetime.now(), who.name, path.name, f"{manifest.rows} rows", note],
        )
        # Who is signed in is today's state, not the backup's: a session ended since the
        # backup was made stays ended, and the people signed in now (the admin restoring
        # it) stay signed in.
        sessions.put_back(cur, signed_in)
    return RestoreResult(manifest, kept, migrated_from)


def list_backups(directory: str | os.PathLike) -> list[tuple[Path, Manifest | None]]:
    """The backups in a directory, newest first, each with its manifest (None if unreadable)."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = []
    for p in sorted(directory.glob(f"*{SUFFIX}"), reverse=True):
        try:
            found.append((p, read_manifest(p)))
        except BackupError:
            if p.name.startswith(PREFIX):
                found.append((p, None))
    return found


def rotate(directory: str | os.PathLike, keep: int) -> list[Path]:
    """Delete the oldest of this product's backups (`kpi-backup-*.zip`) beyond `keep`; other
    files are never touched. Returns what was deleted."""
    if keep < 1:
        raise BackupError(f"keep must be at least 1, not {keep}.")
    ours = sorted(Path(directory).glob(f"{PREFIX}*{SUFFIX}"), reverse=True)  # names sort by time
    removed = ours[keep:]
    for p in removed:
        p.unlink(missing_ok=True)
    return removed
