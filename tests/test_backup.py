"""Backup and restore on real DuckDB files: exact round trips, consistency under writes,
damaged files refused, rotation, the command line, and password hashes kept out of exports."""

import hashlib
import io
import json
import os
import re
import shutil
import threading
import time
import zipfile
from datetime import datetime
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from kpi_core import access, audit, backup, export, users, workbook
from kpi_core.access import Scope
from kpi_core.catalog import load_catalog
from kpi_core.errors import ScopeError
from kpi_core.migrations import MIGRATIONS
from kpi_core.warehouse import Warehouse
from tests.test_cli import cli

ADMIN = access.SYSTEM
HEAD = access.Actor("head_sales", "head", Scope(frozenset({1})))


def _change(wh: Warehouse, text: str) -> None:
    """A little of everything: a comment (a sequence), a user, an actual, a target."""
    with wh.transaction() as cur:
        cur.execute(
            "INSERT INTO comment (id, kpi_id, unit_id, period, created_by, created_at, text) "
            "SELECT nextval('comment_id'), kpi_id, unit_id, period, 'test', now(), ? "
            "FROM actual ORDER BY ALL LIMIT 1",
            [text],
        )
        cur.execute(
            "UPDATE actual SET value = value + 1 WHERE (kpi_id, unit_id, period) IN "
            "(SELECT (kpi_id, unit_id, period) FROM actual ORDER BY ALL LIMIT 3)"
        )
        cur.execute("UPDATE target SET reason = ? WHERE version = 1", [text])


def _tables(path: Path) -> list[str]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return [r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()]
    finally:
        con.close()


def _differences(a: Path, b: Path, skip_audit_of: str | None = None) -> dict[str, int]:
    """Rows that differ, per table, both ways (EXCEPT ALL keeps duplicates)."""
    con = duckdb.connect()
    con.execute("ATTACH ? AS a (READ_ONLY)", [str(a)])
    con.execute("ATTACH ? AS b (READ_ONLY)", [str(b)])
    out = {}
    try:
        names_a, names_b = set(_tables(a)), set(_tables(b))
        assert names_a == names_b
        for t in sorted(names_a):
            where = f" WHERE entity <> '{skip_audit_of}'" if t == "audit" and skip_audit_of else ""
            if t == "data_version" and skip_audit_of:
                continue  # the restore's audit row was a commit: a new data version, rightly
            n = con.execute(
                f"SELECT (SELECT count(*) FROM (SELECT * FROM a.{t}{where} EXCEPT ALL "
                f"SELECT * FROM b.{t}{where})) + (SELECT count(*) FROM (SELECT * FROM b.{t}"
                f"{where} EXCEPT ALL SELECT * FROM a.{t}{where}))"
            ).fetchone()[0]
            if n:
                out[t] = n
    finally:
        con.close()
    return out


def _sequences(path: Path) -> dict:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return dict(
            con.execute("SELECT sequence_name, last_value FROM duckdb_sequences()").fetchall()
        )
    finally:
        con.close()


def test_round_trip_reproduces_every_table_and_sequence(demo_wh, own_file, tmp_path):
    _change(demo_wh, "before the backup")
    users.save_user(
        demo_wh, ADMIN, "auditor", display_name="A", role="viewer", scope=["SALES"],
        password="s3cret-pass", create=True,
    )  # fmt: skip
    demo_wh.close()
    reference = tmp_path / "reference.duckdb"
    reference.write_bytes(own_file.read_bytes())  # the warehouse as backed up (file let go)
    done = backup.backup(demo_wh, tmp_path / "bk", ADMIN)
    assert done.path.parent == tmp_path / "bk" and done.path.suffix == ".zip"
    assert done.manifest.tables["actual"]["rows"] == demo_wh.one("SELECT count(*) FROM actual")[0]

    _change(demo_wh, "after the backup")
    users.delete_user(demo_wh, ADMIN, "auditor")
    with demo_wh.transaction() as cur:
        cur.execute("DELETE FROM actual WHERE period >= (SELECT max(period) FROM actual)")
    assert _differences(reference, own_file)  # the warehouse has moved on

    res = backup.restore(demo_wh, done.path, ADMIN)
    assert res.migrated_from is None and res.kept_as == Path(f"{own_file}.before-restore")
    assert res.kept_as.is_file()
    demo_wh.close()
    # Every row of every table, every column — the restore's own audit row aside.
    assert _differences(reference, own_file, skip_audit_of="backup") == {}
    assert _sequences(reference) == _sequences(own_file)
    last = _sequences(reference)["comment_id"]
    with demo_wh.transaction(data=False) as cur:  # nextval writes: reads are read-only
        assert cur.execute("SELECT nextval('comment_id')").fetchone()[0] == last + 1
    log = demo_wh.df("SELECT field, key FROM audit WHERE entity = 'backup'")
    assert list(log["field"]) == ["restore"] and log["key"][0] == done.path.name
    # The replaced warehouse is kept as it was.
    assert _differences(own_file, res.kept_as, skip_audit_of="backup")


def test_backup_while_another_thread_writes_holds_whole_transactions(demo_wh, tmp_path):
    stop = threading.Event()
    written = []

    def writer():
        i = 0
        while not stop.is_set():
            with demo_wh.transaction() as cur:
                for part in ("first", "second"):
                    cur.execute(
                        "INSERT INTO audit VALUES (now(), 'w', 'pair', ?, ?, NULL, NULL, NULL)",
                        [str(i), part],
                    )
                    time.sleep(0.003)  # not stop.wait: a timed wait never ends under faketime
            written.append(i)
            i += 1

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        results = [backup.backup(demo_wh, tmp_path / "bk", ADMIN) for _ in range(4)]
    finally:
        stop.set()
        thread.join()
    assert len(written) > 4
    for res in results:
        copy = tmp_path / "copy.duckdb"
        with zipfile.ZipFile(res.path) as zf:
            copy.write_bytes(zf.read(backup.DATA))
        con = duckdb.connect(str(copy), read_only=True)
        halves = con.execute(
            "SELECT count(*) FROM (SELECT key FROM audit WHERE entity = 'pair' GROUP BY key "
            "HAVING count(*) <> 2)"
        ).fetchone()[0]
        con.close()
        copy.unlink()
        assert halves == 0
        backup.verify(res.path)


WRITER = """
import sys, time
from kpi_core.warehouse import Warehouse
wh = Warehouse(sys.argv[1], linger=0.3)
deadline = time.monotonic() + float(sys.argv[2])
i = 0
while time.monotonic() < deadline:
    with wh.transaction() as cur:
        cur.execute("INSERT INTO audit VALUES (now(), 'p', 'pair', ?, 'a', NULL, NULL, NULL)", [str(i)])
        time.sleep(0.005)
        cur.execute("INSERT INTO audit VALUES (now(), 'p', 'pair', ?, 'b', NULL, NULL, NULL)", [str(i)])
    i += 1
print(i)
"""


def test_backup_while_another_process_writes(own_file, tmp_path):
    import subprocess
    import sys

    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(own_file), "3"], stdout=subprocess.PIPE, text=True
    )
    wh = Warehouse(own_file, linger=0)
    try:
        import time

        time.sleep(0.8)
        res = backup.backup(wh, tmp_path / "bk", ADMIN)
    finally:
        wh.close()
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0 and int(out) > 0
    copy = tmp_path / "c.duckdb"
    with zipfile.ZipFile(res.path) as zf:
        copy.write_bytes(zf.read(backup.DATA))
    con = duckdb.connect(str(copy), read_only=True)
    odd = con.execute(
        "SELECT count(*) FROM (SELECT key FROM audit WHERE entity = 'pair' GROUP BY key "
        "HAVING count(*) <> 2)"
    ).fetchone()[0]
    con.close()
    assert odd == 0


def _state(wh: Warehouse) -> dict:
    with wh.cursor() as cur:
        db = cur.execute("SELECT current_database()").fetchone()[0]
        return backup.contents(cur, db)


def _rezip(src: Path, dest: Path, manifest: dict | None = None, data: bytes | None = None):
    with zipfile.ZipFile(src) as zf:
        raw_manifest = json.loads(zf.read(backup.MANIFEST))
        raw_data = zf.read(backup.DATA)
    with zipfile.ZipFile(dest, "w") as zf:
        zf.writestr(backup.MANIFEST, json.dumps(manifest or raw_manifest))
        zf.writestr(backup.DATA, raw_data if data is None else data)
    return raw_manifest


def test_restore_refuses_damaged_or_foreign_files_and_changes_nothing(demo_wh, own_file, tmp_path):
    good = backup.backup(demo_wh, tmp_path / "good.zip", ADMIN).path
    _change(demo_wh, "after")
    before = _state(demo_wh)

    flipped = tmp_path / "flipped.zip"
    raw = bytearray(good.read_bytes())
    for i in range(len(raw) // 3, len(raw) // 3 + 64):
        raw[i] ^= 0xFF
    flipped.write_bytes(bytes(raw))

    wrong_sum = tmp_path / "wrong_sum.zip"
    m = _rezip(good, tmp_path / "tmp.zip")
    m["tables"]["actual"]["checksum"] = "12345"
    _rezip(good, wrong_sum, manifest=m)

    wrong_rows = tmp_path / "wrong_rows.zip"
    m = _rezip(good, tmp_path / "tmp.zip")
    m["tables"]["kpi"]["rows"] += 1
    _rezip(good, wrong_rows, manifest=m)

    bad_data = tmp_path / "bad_data.zip"
    with zipfile.ZipFile(good) as zf:
        data = bytearray(zf.read(backup.DATA))
    data[len(data) // 2] ^= 0x01
    _rezip(good, bad_data, data=bytes(data))

    newer = tmp_path / "newer.zip"
    m = _rezip(good, tmp_path / "tmp.zip")
    m["schema_version"] = 999
    _rezip(good, newer, manifest=m)

    foreign = tmp_path / "foreign.zip"
    with zipfile.ZipFile(foreign, "w") as zf:
        zf.writestr("hello.txt", "hi")
    not_zip = tmp_path / "not.zip"
    not_zip.write_text("plain text")

    for path in (flipped, wrong_sum, wrong_rows, bad_data, newer, foreign, not_zip):
        with pytest.raises(backup.BackupError):
            backup.restore(demo_wh, path, ADMIN)
        assert _state(demo_wh) == before, path.name
    assert not Path(f"{own_file}.before-restore").exists()
    assert not [p for p in own_file.parent.iterdir() if ".restore-" in p.name]
    assert demo_wh.one("SELECT count(*) FROM audit WHERE entity = 'backup'")[0] == 1


def test_older_backup_is_migrated_on_restore(demo_wh, tmp_path, monkeypatch):
    import kpi_core.warehouse as warehouse_module

    monkeypatch.setattr(warehouse_module, "MIGRATIONS", MIGRATIONS[:-1])
    old = Warehouse(tmp_path / "old.duckdb", linger=0)
    # Numbers may have gaps (kpi_core.warehouse.migrate): compare with the numbers themselves.
    assert old.schema_version() == MIGRATIONS[-2][0]
    users.save_user(
        old, ADMIN, "boss", display_name="Boss", role="admin", scope=[],
        password="a long password", create=True,
    )  # fmt: skip
    done = backup.backup(old, tmp_path / "old.zip", ADMIN)
    old.close()
    monkeypatch.undo()
    res = backup.restore(demo_wh, done.path, ADMIN)
    assert res.migrated_from == MIGRATIONS[-2][0]
    assert demo_wh.schema_version() == backup.LATEST_SCHEMA
    assert demo_wh.one("SELECT count(*) FROM kpi")[0] == 0


def test_a_warehouse_without_an_admin_is_not_backed_up(tmp_path):
    """Such a backup could never be restored (see the crafted ones below); say so at once."""
    bare = Warehouse(tmp_path / "bare.duckdb", linger=0)
    try:
        with pytest.raises(backup.BackupError, match="The warehouse has no admin user"):
            backup.backup(bare, tmp_path / "bk", ADMIN)
    finally:
        bare.close()
    assert not list((tmp_path / "bk").glob("*.zip"))


def test_rotation_keeps_the_newest_n_and_nothing_else(demo_wh, tmp_path):
    folder = tmp_path / "bk"
    folder.mkdir()
    (folder / "notes.zip").write_text("not ours")
    made = [backup.backup(demo_wh, folder, ADMIN, keep=2) for _ in range(4)]
    left = sorted(p.name for p in folder.iterdir())
    assert left == sorted([made[-1].path.name, made[-2].path.name, "notes.zip"])
    assert [p.name for p in made[-1].removed] == [made[-3].path.name]
    listed = backup.list_backups(folder)
    assert [p for p, _ in listed][:2] == [made[-1].path, made[-2].path]
    rotated = demo_wh.one(
        "SELECT count(*) FROM audit WHERE entity = 'backup' AND field = 'rotated'"
    )
    assert rotated[0] == 2


def test_settings_from_secrets(demo_wh, tmp_path, monkeypatch):
    secrets = tmp_path / "secrets.toml"
    secrets.write_text(f'[backup]\ndir = "{(tmp_path / "nightly").as_posix()}"\nkeep = 3\n')
    monkeypatch.setenv("KPI_SECRETS", str(secrets))
    conf = backup.settings(demo_wh)
    assert conf.directory == tmp_path / "nightly" and conf.keep == 3
    secrets.write_text("[backup]\nkeep = 0\n")
    with pytest.raises(backup.BackupError):
        backup.settings(demo_wh)
    assert backup.size_limit() == backup.MAX_MB << 20
    secrets.write_text("[backup]\nmax_mb = 64\n")
    assert backup.size_limit() == 64 << 20
    secrets.write_text('[backup]\nmax_mb = "lots"\n')
    with pytest.raises(backup.BackupError, match="max_mb"):
        backup.size_limit()


def test_non_admins_are_refused(demo_wh, tmp_path):
    good = backup.backup(demo_wh, tmp_path / "good.zip", ADMIN).path
    with pytest.raises(ScopeError):
        backup.backup(demo_wh, tmp_path / "other.zip", HEAD)
    with pytest.raises(ScopeError):
        backup.restore(demo_wh, good, HEAD)
    assert not (tmp_path / "other.zip").exists()


def test_cli_backup_and_restore(own_file, tmp_path, monkeypatch):
    secrets = tmp_path / "secrets.toml"
    secrets.write_text(f'[backup]\ndir = "{(tmp_path / "auto").as_posix()}"\nkeep = 1\n')
    monkeypatch.setenv("KPI_SECRETS", str(secrets))
    for command in ("backup", "restore"):
        assert "usage: python -m kpi_core" in cli(command, "--help").stdout
    anonymous = cli("--warehouse", own_file, "backup", tmp_path / "x.zip", check=False)
    assert anonymous.returncode == 2 and "--admin" in anonymous.stderr  # who runs it is explicit
    assert not (tmp_path / "x.zip").exists()
    users = ("--warehouse", own_file)
    wh = (*users, "--admin")
    first = cli(*wh, "backup", tmp_path / "one.zip")
    assert "one.zip" in first.stdout
    cli(*wh, "backup")
    cli(*wh, "backup")
    assert len(list((tmp_path / "auto").glob("kpi-backup-*.zip"))) == 1  # keep = 1
    cli(*wh, "backup", tmp_path / "dir", "--keep", "5")
    assert len(list((tmp_path / "dir").glob("*.zip"))) == 1

    con = duckdb.connect(str(own_file))
    con.execute("DELETE FROM actual")
    con.close()
    refused = cli(*wh, "restore", tmp_path / "one.zip", check=False)  # no terminal, no --yes
    assert refused.returncode == 1 and "--yes" in refused.stderr
    assert cli(*wh, "restore", tmp_path / "missing.zip", "--yes", check=False).returncode == 3
    head = cli(
        *users, "--user", "head_sales", "restore", tmp_path / "one.zip", "--yes", check=False
    )
    assert head.returncode == 3
    assert (
        cli(*users, "--user", "head_sales", "backup", tmp_path / "h.zip", check=False).returncode
        == 3
    )
    done = cli(*wh, "restore", tmp_path / "one.zip", "--yes")
    assert "before-restore" in done.stdout
    back = Warehouse(own_file, linger=0)
    assert back.one("SELECT count(*) FROM actual")[0] > 0
    back.close()


def test_password_hashes_never_leave_the_user_table(demo_wh, tmp_path):
    users.save_user(
        demo_wh, ADMIN, "ops", display_name="Ops", role="analyst", scope=["GROUP"],
        password="first-password", create=True,
    )  # fmt: skip
    users.save_user(
        demo_wh, ADMIN, "ops", display_name="Ops", role="analyst", scope=["GROUP"],
        password="second-password",
    )  # fmt: skip
    hashes = [r[0] for r in demo_wh.rows("SELECT password_hash FROM app_user")]
    assert all(h.startswith("scrypt$") for h in hashes)
    secrets = [*hashes, *(h.split("$")[-1] for h in hashes), "first-password", "second-password"]

    logged = demo_wh.df("SELECT * FROM audit").astype(str).to_csv()
    assert "password" in logged  # that it changed is logged ...
    assert not any(s in logged for s in secrets) and "scrypt$" not in logged  # ... never what

    cat = load_catalog(demo_wh)
    download = workbook.sheet_bytes("audit", audit.entries(demo_wh, cat, ADMIN))
    shown = pd.read_excel(io.BytesIO(download), engine="calamine").astype(str).to_csv()
    assert "ops" in shown and not any(s in shown for s in secrets)

    demo_wh.close()
    out = tmp_path / "export.xlsx"
    cli("--warehouse", demo_wh.path, "--admin", "export", out)
    with zipfile.ZipFile(out) as zf:
        text = "".join(zf.read(n).decode("utf-8", "replace") for n in zf.namelist())
    assert "scrypt$" not in text and not any(s in text for s in secrets)
    frames = export.system_frames(demo_wh, Scope.all())
    assert not any("password" in str(c) for f in frames.values() for c in f.columns)


def test_manifest_describes_the_backup(demo_wh, tmp_path):
    res = backup.backup(demo_wh, tmp_path / "m.zip", ADMIN)
    m = backup.read_manifest(res.path)
    assert m == res.manifest
    assert m.schema_version == backup.LATEST_SCHEMA and m.created_by == "system"
    assert datetime.fromisoformat(m.created_at) <= datetime.now()
    assert set(m.tables) >= {"actual", "target", "kpi", "app_user", "audit", "schema_version"}
    assert m.sequences["kpi_id"] == demo_wh.one("SELECT max(id) FROM kpi")[0]
    assert os.path.getsize(res.path) > 0


# Crafted backups: each consistent with its own manifest, each wrong for KPI Monitor.


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _craft(tmp_path: Path, name: str, change, base: Path | None = None) -> Path:
    """A backup made by hand: `change(con)` runs on a copy of `base` (or on an empty file), and
    the manifest is computed from the result the way `backup.backup` computes it, so checksums,
    row counts and sequences all agree with the data."""
    db = tmp_path / f"{name}.duckdb"
    if base is not None:
        shutil.copy(base, db)
    con = duckdb.connect(str(db))
    try:
        change(con)
        con.execute("CHECKPOINT")
        catalog = con.execute("SELECT current_database()").fetchone()[0]
        tables = backup.contents(con, catalog)
        sequences = {
            s: None if v is None else int(v)
            for s, v in con.execute(
                "SELECT sequence_name, last_value FROM duckdb_sequences() WHERE database_name = ?",
                [catalog],
            ).fetchall()
        }
        version = con.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchone()
    finally:
        con.close()
    manifest = backup.Manifest(
        schema_version=int(version[0]), created_at="2026-11-21T09:00:00", created_by="mallory",
        duckdb_version=duckdb.__version__, sha256=_sha(db), tables=tables, sequences=sequences,
    )  # fmt: skip
    path = tmp_path / f"{name}.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(backup.MANIFEST, manifest.to_json())
        zf.write(db, backup.DATA)
    db.unlink()
    return path


def _only_schema_version(con) -> None:
    con.execute(
        "CREATE TABLE schema_version "
        "(version INTEGER PRIMARY KEY, description VARCHAR, applied_at TIMESTAMP)"
    )
    for version, description, _ in MIGRATIONS:
        con.execute("INSERT INTO schema_version VALUES (?, ?, now())", [version, description])


CRAFTED = {
    # what is done to a copy of the demo warehouse (None: to an empty file) → what is said
    "only_schema_version": (_only_schema_version, "table actual is missing", False),
    "view_reading_files": (
        "CREATE VIEW leak AS SELECT content FROM read_text('/etc/hostname')",
        "view leak",
        True,
    ),
    "view_in_place_of_a_table": (
        "DROP TABLE push_log; CREATE VIEW push_log AS SELECT now() AS sent_at, content AS channel "
        "FROM read_text('/etc/hostname')",
        "view push_log",
        True,
    ),
    "scalar_macro": ("CREATE MACRO lower(x) AS upper(x)", "macro lower", True),
    "table_macro": (
        "CREATE MACRO files() AS TABLE SELECT * FROM read_text('/etc/hostname')",
        "macro files",
        True,
    ),
    "extra_table": (
        "CREATE TABLE notes (t VARCHAR); INSERT INTO notes VALUES ('x')",
        "table notes",
        True,
    ),  # fmt: skip
    "extra_column": (
        "ALTER TABLE app_user ADD COLUMN note VARCHAR DEFAULT 'x'",
        "table app_user",
        True,
    ),
    "missing_column": ("ALTER TABLE kpi DROP COLUMN caliber", "table kpi", True),
    "column_default_reads_a_setting": (
        "ALTER TABLE audit ALTER COLUMN reason SET DEFAULT current_setting('temp_directory')",
        "table audit",
        True,
    ),
    "extra_sequence": ("CREATE SEQUENCE extra_id START 1", "sequence extra_id", True),
    "user_type": ("CREATE TYPE mood AS ENUM ('ok', 'bad')", "type mood", True),
    "index": ("CREATE INDEX user_role ON app_user (role)", "index user_role", True),
    "schema": ("CREATE SCHEMA other; CREATE TABLE other.t (x INTEGER)", "schema other", True),
    "no_admin": ("UPDATE app_user SET role = 'viewer' WHERE role = 'admin'", "no admin", True),
    "no_user": ("DELETE FROM app_user", "no admin", True),
}


def _run_sql(sql):
    def change(con):
        con.execute(sql)

    return change


@pytest.mark.parametrize("case", CRAFTED, ids=list(CRAFTED))
def test_restore_refuses_a_crafted_backup_and_changes_nothing(demo_wh, own_file, tmp_path, case):
    change, said, on_the_demo = CRAFTED[case]
    demo_wh.close()
    crafted = _craft(
        tmp_path, case, _run_sql(change) if isinstance(change, str) else change,
        base=own_file if on_the_demo else None,
    )  # fmt: skip
    before = _state(demo_wh)
    for check in (backup.verify, lambda p: backup.restore(demo_wh, p, ADMIN)):
        with pytest.raises(backup.BackupError) as refused:
            check(crafted)
        assert said in str(refused.value) and crafted.name in str(refused.value)
    assert _state(demo_wh) == before
    assert not Path(f"{own_file}.before-restore").exists()


def test_a_crafted_backup_without_a_flaw_is_restored(demo_wh, own_file, tmp_path):
    """The crafting above is sound: unchanged, the same backup restores."""
    demo_wh.close()
    crafted = _craft(tmp_path, "sound", lambda con: None, base=own_file)
    assert backup.restore(demo_wh, crafted, ADMIN).migrated_from is None


def _bomb(path: Path, size: int) -> None:
    """A backup whose database unpacks to `size` bytes of zeros (a few KB packed)."""
    manifest = {"format": backup.FORMAT, "format_version": 1, "schema_version": len(MIGRATIONS),
                "created_at": "2026-11-21T09:00:00", "created_by": "mallory",
                "duckdb_version": duckdb.__version__, "sha256": "0" * 64,
                "tables": {}, "sequences": {}}  # fmt: skip
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(backup.MANIFEST, json.dumps(manifest))
        with zf.open(backup.DATA, "w", force_zip64=True) as out:
            block = bytes(1 << 20)
            for _ in range(size >> 20):
                out.write(block)


def test_a_zip_bomb_is_refused_before_anything_is_written(demo_wh, own_file, tmp_path, monkeypatch):
    secrets = tmp_path / "secrets.toml"
    secrets.write_text("[backup]\nmax_mb = 8\n")
    monkeypatch.setenv("KPI_SECRETS", str(secrets))
    bomb = tmp_path / "bomb.zip"
    _bomb(bomb, 64 << 20)
    assert bomb.stat().st_size < 1 << 20
    before = _state(demo_wh)
    written = []

    for check in (backup.verify, lambda p: backup.restore(demo_wh, p, ADMIN)):
        with pytest.raises(backup.BackupError, match=r"over the 8 MB .*\[backup\] max_mb"):
            check(bomb)
        written += [p for p in (tmp_path.iterdir()) if p.suffix == ".duckdb" and "verify" in p.name]
        written += [p for p in own_file.parent.iterdir() if ".restore-" in p.name]
    assert written == [] and _state(demo_wh) == before
    target = tmp_path / "unpacked.duckdb"
    with pytest.raises(backup.BackupError):
        backup.unpack(bomb, target, limit=8 << 20)
    assert not target.exists()  # refused from the declared size: not a byte written


def test_the_size_limit_holds_while_unpacking(tmp_path):
    """A database entry whose declared size is within the limit but which unpacks to more (a
    zip edited by hand): unpacking stops, and nothing beyond the limit is written."""
    liar = tmp_path / "liar.zip"
    with zipfile.ZipFile(liar, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(backup.MANIFEST, "{}")
        zf.writestr(backup.DATA, bytes(4 << 20))
    raw = liar.read_bytes()
    # The uncompressed size, in the local header and in the central directory: 4 MB → 1 MB.
    real, fake = (4 << 20).to_bytes(4, "little"), (1 << 20).to_bytes(4, "little")
    assert raw.count(real) == 2
    liar.write_bytes(raw.replace(real, fake))
    with zipfile.ZipFile(liar) as zf:
        assert zf.getinfo(backup.DATA).file_size == 1 << 20
    target = tmp_path / "unpacked.duckdb"
    with pytest.raises(backup.BackupError, match="liar.zip"):
        backup.unpack(liar, target, limit=2 << 20)
    assert not target.exists()


def test_a_huge_manifest_or_extra_entries_are_refused(demo_wh, tmp_path):
    good = backup.backup(demo_wh, tmp_path / "good.zip", ADMIN).path
    with zipfile.ZipFile(good) as zf:
        manifest, data = zf.read(backup.MANIFEST), zf.read(backup.DATA)
    huge = tmp_path / "huge.zip"
    with zipfile.ZipFile(huge, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(backup.MANIFEST, manifest[:-1] + b" " * (64 << 20) + b"}")
        zf.writestr(backup.DATA, data)
    extra = tmp_path / "extra.zip"
    with zipfile.ZipFile(extra, "w") as zf:
        zf.writestr(backup.MANIFEST, manifest)
        zf.writestr(backup.DATA, data)
        zf.writestr("../../etc/cron.d/x", "* * * * * root true")
    twice = tmp_path / "twice.zip"
    with zipfile.ZipFile(twice, "w") as zf, pytest.warns(UserWarning, match="Duplicate name"):
        zf.writestr(backup.MANIFEST, manifest)
        zf.writestr(backup.DATA, data)
        zf.writestr(backup.DATA, b"not a database")
    for path, said in ((huge, "manifest"), (extra, "../../etc/cron.d/x"), (twice, "twice")):
        with pytest.raises(backup.BackupError, match=re.escape(said)):
            backup.read_manifest(path)


def test_the_command_line_refuses_a_backup_holding_only_schema_version(own_file, tmp_path):
    crafted = _craft(tmp_path, "bare", _only_schema_version)
    refused = cli("--warehouse", own_file, "--admin", "restore", crafted, "--yes", check=False)
    assert refused.returncode == 1 and "table actual is missing" in refused.stderr
    assert "Traceback" not in refused.stderr
    wh = Warehouse(own_file, linger=0)
    try:
        assert wh.one("SELECT count(*) FROM app_user WHERE role = 'admin'")[0] >= 1
    finally:
        wh.close()


def test_a_crafted_backup_is_refused_in_the_readers_language(demo_wh, own_file, tmp_path):
    """The refusal's parts (the file, each object and column) are translated with it."""
    demo_wh.close()
    sql = "CREATE TABLE notes (t VARCHAR); ALTER TABLE kpi DROP COLUMN caliber"
    crafted = _craft(tmp_path, "two_flaws", _run_sql(sql), base=own_file)
    with pytest.raises(backup.BackupError) as refused:
        backup.verify(crafted)
    err = refused.value
    assert (
        str(err)
        == err.text("en")
        == (
            "two_flaws.zip is not a KPI Monitor warehouse of schema version "
            f"{backup.LATEST_SCHEMA}: table notes is not part of the warehouse; "
            "table kpi differs (no column caliber)."
        )
    )
    assert err.text("zh") == (
        f"备份“two_flaws.zip”不是结构版本 {backup.LATEST_SCHEMA} 的 KPI 监控仓库："
        "表 notes 不属于仓库；表 kpi 与仓库不同（缺少列 caliber）。"
    )
