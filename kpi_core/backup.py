"""Backup and restore of the whole warehouse, while the app runs.

A backup is a zip file holding `manifest.json` and `warehouse.duckdb`, a DuckDB copy of every
table and sequence taken in one read transaction (`COPY FROM DATABASE`), so it never holds half
of a write. The manifest records the schema version, each table's row count and content checksum
(the sum of its rows' hashes: order-free, counts duplicates), each sequence's last value, the
copy's SHA-256, when and by whom.

Restoring checks all of that on a scratch copy before the warehouse is touched, refuses a backup
from a newer schema, migrates an older one, then puts the copy in the warehouse's place in one
step (`Warehouse.replace_file`), keeping the replaced file as `<warehouse>.before-restore`.

A manifest that agrees with its data proves only that the file is whole, not that it is ours: a
backup is checked as well against what the migrations make of its schema version — the same
tables with the same columns, and nothing else (no view, macro, type, index, other schema or
sequence that could run code or read files once the app queries it) — and must hold an admin.
The database is unpacked only up to `[backup] max_mb` (default 1024), checked against the size
the zip declares before a byte is written and again while it is written.
"""

from __future__ import annotations

import functools
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

from kpi_core import audit, sessions
from kpi_core.access import Actor, can
from kpi_core.errors import KpiError, NotFoundError, ScopeError
from kpi_core.messages import Items, Message
from kpi_core.migrations import MIGRATIONS
from kpi_core.settings import PROJECT, section
from kpi_core.texts import N_
from kpi_core.warehouse import SCHEMA_VERSION_TABLE, Warehouse

FORMAT = "kpi-monitor-backup"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
DATA = "warehouse.duckdb"
PREFIX = "kpi-backup-"
SUFFIX = ".zip"
LATEST_SCHEMA = max(v for v, _, _ in MIGRATIONS)
_CHUNK = 1 << 20
MAX_MB = 1024  # the default of `[backup] max_mb`: the largest database a backup may unpack to
_MANIFEST_LIMIT = 1 << 20  # bytes; a real manifest is a few KB
# A backup's database is opened with no access to files, the network or extensions: reading its
# catalog and tables must not be able to do anything else.
_SEALED = {
    "enable_external_access": False,
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
    "lock_configuration": True,
}


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


def file_only(wh: Warehouse) -> None:
    """The zip backups are the DuckDB file's; a PostgreSQL warehouse has pg_dump (README)."""
    if wh.engine != "duckdb":
        raise BackupError(Message("pg_err_backup", url=wh.path))


def settings(wh: Warehouse) -> Settings:
    file_only(wh)
    conf = section("backup")
    raw = conf.get("dir")
    if raw:
        directory = Path(raw)
        if not directory.is_absolute():
            directory = PROJECT / directory
    else:
        base = Path.cwd() if wh.in_memory else Path(wh.path).resolve().parent
        directory = base / "backups"
    keep = conf.get("keep")
    if keep is not None and (not isinstance(keep, int) or keep < 1):
        raise BackupError(Message("bk_keep_setting", value=repr(keep)))
    return Settings(directory, keep)


def _admin(who: Actor, refusal: Message) -> None:
    if not can(who, "manage_backups"):
        raise ScopeError(refusal)


def size_limit() -> int:
    """`[backup] max_mb` in secrets.toml, in bytes: the largest database a backup may unpack to."""
    value = section("backup").get("max_mb", MAX_MB)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise BackupError(Message("bk_max_mb_setting", value=repr(value)))
    return value << 20


def _tables(cur: duckdb.DuckDBPyConnection, database: str) -> list[str]:
    return [
        r[0]
        for r in cur.execute(
            "SELECT table_name FROM duckdb_tables() WHERE database_name = ? AND NOT temporary "
            "AND schema_name = 'main' ORDER BY table_name",
            [database],
        ).fetchall()
    ]


def _catalog(cur: duckdb.DuckDBPyConnection, database: str) -> dict[str, str]:
    """Every object in `database`'s catalog as "kind name" → its definition: tables with their
    columns, defaults and constraints (DuckDB's own CREATE statement), sequences by their
    parameters (not their current value), and whatever else the file holds."""
    out = {
        f"schema {name}": ""
        for (name,) in cur.execute(
            "SELECT schema_name FROM duckdb_schemas() WHERE database_name = ?", [database]
        ).fetchall()
    }
    for kind, query in (
        ("table", "SELECT schema_name, table_name, sql FROM duckdb_tables() "
                  "WHERE database_name = ?"),
        ("view", "SELECT schema_name, view_name, sql FROM duckdb_views() "
                 "WHERE database_name = ? AND NOT internal"),
        ("macro", "SELECT schema_name, function_name, function_type FROM duckdb_functions() "
                  "WHERE database_name = ? AND NOT internal"),
        ("type", "SELECT schema_name, type_name, logical_type FROM duckdb_types() "
                 "WHERE database_name = ? AND NOT internal"),
        ("index", "SELECT schema_name, index_name, sql FROM duckdb_indexes() "
                  "WHERE database_name = ?"),
        ("sequence", "SELECT schema_name, sequence_name, format('{} {} {} {}', increment_by, "
                     "min_value, max_value, cycle) FROM duckdb_sequences() "
                     "WHERE database_name = ?"),
    ):  # fmt: skip
        for schema, name, definition in cur.execute(query, [database]).fetchall():
            label = name if schema == "main" else f"{schema}.{name}"
            out[f"{kind} {label}"] = definition or ""
    return out


def _columns(cur: duckdb.DuckDBPyConnection, database: str, table: str) -> dict[str, str]:
    return {
        name: f"{kind}{'' if nullable else ' NOT NULL'}"
        + (f" DEFAULT {default}" if default is not None else "")
        for name, kind, nullable, default in cur.execute(
            "SELECT column_name, data_type, is_nullable, column_default FROM duckdb_columns() "
            "WHERE database_name = ? AND schema_name = 'main' AND table_name = ? "
            "ORDER BY column_index",
            [database, table],
        ).fetchall()
    }


@functools.cache
def _expected(version: int) -> tuple[dict[str, str], dict[str, dict[str, str]]]:
    """The catalog and the tables' columns the migrations make up to `version`: a fresh
    in-memory database migrated that far and read back the way a backup's is read."""
    con = duckdb.connect(config=_SEALED)
    try:
        con.execute(SCHEMA_VERSION_TABLE)
        for number, _, sql in MIGRATIONS:
            if number <= version:
                con.execute(sql)
        db = con.execute("SELECT current_database()").fetchone()[0]
        return _catalog(con, db), {t: _columns(con, db, t) for t in _tables(con, db)}
    finally:
        con.close()


# What each kind of object in a DuckDB file is called (the keys of `_catalog`: "table kpi").
OBJECTS = {
    "schema": N_("bk_obj_schema"),
    "table": N_("bk_obj_table"),
    "view": N_("bk_obj_view"),
    "macro": N_("bk_obj_macro"),
    "type": N_("bk_obj_type"),
    "index": N_("bk_obj_index"),
    "sequence": N_("bk_obj_sequence"),
}


def _object(key: str) -> Message:
    kind, _, name = key.partition(" ")
    return Message(OBJECTS[kind], name=name)


def _schema_problems(cur: duckdb.DuckDBPyConnection, database: str, version: int) -> list[Message]:
    """How `database` differs from schema version `version`; [] when it is exactly that."""
    want, want_columns = _expected(version)
    got = _catalog(cur, database)

    def tables_first(key: str) -> tuple[bool, str]:
        return not key.startswith("table "), key

    problems = []
    for key in sorted(set(want) - set(got), key=tables_first):
        problems.append(Message("bk_obj_missing", obj=_object(key)))
    for key in sorted(set(got) - set(want), key=tables_first):
        problems.append(Message("bk_obj_extra", obj=_object(key)))
    for key in sorted((k for k in set(got) & set(want) if got[k] != want[k]), key=tables_first):
        kind, _, name = key.partition(" ")
        if kind != "table":
            problems.append(Message("bk_obj_redefined", obj=_object(key)))
            continue
        have, should = _columns(cur, database, name), want_columns[name]
        parts = [Message("bk_extra_column", column=c) for c in have if c not in should]
        parts += [Message("bk_no_column", column=c) for c in should if c not in have]
        parts += [
            Message("bk_column_type", column=c, have=have[c], should=should[c])
            for c in should
            if c in have and have[c] != should[c]
        ]
        problems.append(
            Message(
                "bk_table_differs",
                obj=_object(key),
                parts=Items(parts, commas=True) if parts else Message("bk_its_constraints"),
            )
        )
    return problems


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


def _inspect(path: Path, label: Message) -> tuple[dict[str, dict], dict[str, int | None], int]:
    """Tables, sequences and schema version of a closed DuckDB file, after checking that it is
    a KPI Monitor warehouse of that version and nothing more, with an admin. `label` names the
    file in messages."""
    try:
        con = duckdb.connect(str(path), read_only=True, config=_SEALED)
    except duckdb.Error as exc:
        raise BackupError(Message("bk_cannot_open", label=label, error=exc)) from exc
    try:
        db = con.execute("SELECT current_database()").fetchone()[0]
        if "schema_version" not in _tables(con, db):
            raise BackupError(Message("bk_no_schema_version", label=label))
        version = int(
            con.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchone()[0]
        )
        if version > LATEST_SCHEMA:
            raise BackupError(
                Message("bk_newer_schema", label=label, version=version, latest=LATEST_SCHEMA)
            )
        if version < 1:
            raise BackupError(Message("bk_schema_zero", label=label))
        if problems := _schema_problems(con, db, version):
            shown = problems[:12]
            if len(problems) > 12:
                shown.append(Message("bk_and_more", n=len(problems) - 12))
            raise BackupError(
                Message("bk_wrong_schema", label=label, version=version, problems=Items(shown))
            )
        admins = con.execute("SELECT count(*) FROM app_user WHERE role = 'admin'").fetchone()[0]
        if not admins:
            raise BackupError(Message("bk_no_admin", label=label))
        return contents(con, db), _sequences(con, db), version
    except duckdb.Error as exc:
        raise BackupError(Message("bk_cannot_read", label=label, error=exc)) from exc
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
    _admin(who, Message("bk_admins_backup"))
    file_only(wh)
    if keep is not None and keep < 1:
        raise BackupError(Message("bk_keep_at_least", keep=keep))
    now = datetime.now()
    target = _target(dest, now)
    if target.exists():
        raise BackupError(Message("bk_target_exists", target=target))
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = target.parent / f".{target.name}.{uuid.uuid4().hex}"
    scratch.mkdir()
    try:
        copy = scratch / DATA
        alias = f"kpi_backup_{uuid.uuid4().hex}"
        with wh.cursor() as cur:
            source = cur.execute("SELECT current_database()").fetchone()[0]
            cur.execute("ATTACH ? AS " + alias + " (READ_WRITE)", [str(copy)])
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
        tables, sequences, version = _inspect(copy, Message("bk_the_warehouse"))
        if tables != seen:
            raise BackupError(Message("bk_copy_differs"))
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
        audit.record(
            cur, changed_at=datetime.now(), changed_by=who.name, entity="backup",
            key=target.name, field="backup",
            new=f"{manifest.rows} rows, schema {manifest.schema_version}",
        )  # fmt: skip
        for old in removed:
            audit.record(
                cur, changed_at=datetime.now(), changed_by=who.name, entity="backup",
                key=old.name, field="rotated", old=old.name, reason=f"keep {keep}",
            )  # fmt: skip
    return BackupResult(target, manifest, removed)


def read_manifest(path: str | os.PathLike) -> Manifest:
    """The manifest of a backup file, checked for form (not yet against the data)."""
    path = Path(path)
    if not path.is_file():
        raise NotFoundError(Message("bk_no_file", path=path))
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
            if not {MANIFEST, DATA} <= set(names):
                raise BackupError(Message("bk_no_manifest", file=path.name, manifest=MANIFEST))
            for name in sorted(set(names)):
                if names.count(name) > 1:
                    raise BackupError(Message("bk_twice", file=path.name, name=name))
            if other := sorted(set(names) - {MANIFEST, DATA}):
                raise BackupError(
                    Message("bk_other_members", file=path.name, other=Items(other, commas=True),
                            manifest=MANIFEST, data=DATA)
                )  # fmt: skip
            info = zf.getinfo(MANIFEST)
            if info.file_size > _MANIFEST_LIMIT:
                raise BackupError(
                    Message("bk_manifest_too_big", file=path.name, size=info.file_size)
                )
            with zf.open(info) as fh:
                raw = json.loads(fh.read(_MANIFEST_LIMIT + 1).decode("utf-8"))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, UnicodeDecodeError, ValueError) as exc:
        raise BackupError(Message("bk_damaged_or_not", file=path.name, error=exc)) from exc
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise BackupError(Message("bk_not_ours", file=path.name))
    if raw.get("format_version", 0) > FORMAT_VERSION:
        raise BackupError(Message("bk_newer_format", file=path.name))
    try:
        manifest = Manifest(**raw)
        assert isinstance(manifest.schema_version, int) and manifest.schema_version >= 1
        assert isinstance(manifest.tables, dict)
        assert all({"rows", "checksum"} <= set(t) for t in manifest.tables.values())
    except (TypeError, AssertionError) as exc:
        raise BackupError(Message("bk_bad_manifest", file=path.name)) from exc
    return manifest


def unpack(path: str | os.PathLike, into: str | os.PathLike, *, limit: int) -> str:
    """Write the backup's database to `into` and return its SHA-256. Refused before a byte is
    written when the zip declares more than `limit` bytes or more than the disk has free, and
    while writing as soon as more comes out than declared (nothing partial is left)."""
    path, into = Path(path), Path(into)
    h = hashlib.sha256()
    try:
        with zipfile.ZipFile(path) as zf:
            declared = zf.getinfo(DATA).file_size
            if declared > limit:
                raise BackupError(
                    Message("bk_too_large", file=path.name, mb=declared / 2**20,
                            limit=limit / 2**20)
                )  # fmt: skip
            free = shutil.disk_usage(into.parent).free
            if declared > free:
                raise BackupError(
                    Message("bk_no_space", file=path.name, mb=declared / 2**20,
                            free=free / 2**20, folder=into.parent)
                )  # fmt: skip
            written = 0
            with zf.open(DATA) as src, into.open("wb") as out:
                while chunk := src.read(_CHUNK):
                    written += len(chunk)
                    if written > min(declared, limit):
                        raise BackupError(Message("bk_unpacks_more", file=path.name, size=declared))
                    h.update(chunk)
                    out.write(chunk)
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError) as exc:  # bad CRC: BadZipFile
        into.unlink(missing_ok=True)
        raise BackupError(Message("bk_damaged", file=path.name, error=exc)) from exc
    except BackupError:
        into.unlink(missing_ok=True)
        raise
    return h.hexdigest()


def _extract(path: Path, manifest: Manifest, into: Path) -> None:
    """The backup's database, checked against the manifest and the schema, written to `into`."""
    if unpack(path, into, limit=size_limit()) != manifest.sha256:
        raise BackupError(Message("bk_checksum", file=path.name))
    tables, sequences, version = _inspect(into, Message("bk_file", file=path.name))
    if version != manifest.schema_version:
        raise BackupError(Message("bk_version_differs", file=path.name))
    same_engine = manifest.duckdb_version == duckdb.__version__
    for name, want in manifest.tables.items():
        got = tables.get(name)
        if got is None or got["rows"] != want["rows"]:
            raise BackupError(Message("bk_table_rows", file=path.name, name=name))
        # Row hashes are DuckDB's own; another version may hash differently.
        if same_engine and got["checksum"] != want["checksum"]:
            raise BackupError(Message("bk_table_checksum", file=path.name, name=name))
    if set(tables) != set(manifest.tables) or sequences != manifest.sequences:
        raise BackupError(Message("bk_tables_differ", file=path.name))


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
    _admin(who, Message("bk_admins_restore"))
    file_only(wh)
    path = Path(path)
    manifest = read_manifest(path)
    if manifest.schema_version > LATEST_SCHEMA:
        raise BackupError(
            Message("bk_newer_restore", file=path.name, version=manifest.schema_version,
                    latest=LATEST_SCHEMA)
        )  # fmt: skip
    if wh.in_memory:
        raise BackupError(Message("bk_in_memory"))
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
        audit.record(
            cur, changed_at=datetime.now(), changed_by=who.name, entity="backup",
            key=path.name, field="restore", new=f"{manifest.rows} rows", reason=note,
        )  # fmt: skip
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
        raise BackupError(Message("bk_keep_at_least", keep=keep))
    ours = sorted(Path(directory).glob(f"{PREFIX}*{SUFFIX}"), reverse=True)  # names sort by time
    removed = ours[keep:]
    for p in removed:
        p.unlink(missing_ok=True)
    return removed
