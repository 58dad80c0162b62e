"""Backup and restore on real DuckDB files: exact round trips, consistency under writes,
damaged files refused, rotation, the command line, and password hashes kept out of exports."""

import io
import json
import os
import threading
import zipfile
from datetime import datetime
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from kpi_core import audit, backup, export, service, users, workbook
from kpi_core.access import Scope
from kpi_core.catalog import load_catalog
from kpi_core.errors import ScopeError
from kpi_core.migrations import MIGRATIONS
from kpi_core.warehouse import Warehouse
from tests.test_cli import cli

ADMIN = service.SYSTEM
HEAD = service.Actor("head_sales", "head", Scope(frozenset({1})))


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
    assert demo_wh.one("SELECT nextval('comment_id')")[0] == last + 1
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
                    stop.wait(0.003)
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
    assert old.schema_version() == MIGRATIONS[-2][0]
    done = backup.backup(old, tmp_path / "old.zip", ADMIN)
    old.close()
    monkeypatch.undo()
    res = backup.restore(demo_wh, done.path, ADMIN)
    assert res.migrated_from == MIGRATIONS[-2][0]
    assert demo_wh.schema_version() == MIGRATIONS[-1][0]
    assert demo_wh.one("SELECT count(*) FROM kpi")[0] == 0


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
    assert m.schema_version == MIGRATIONS[-1][0] and m.created_by == "system"
    assert datetime.fromisoformat(m.created_at) <= datetime.now()
    assert set(m.tables) >= {"actual", "target", "kpi", "app_user", "audit", "schema_version"}
    assert m.sequences["kpi_id"] == demo_wh.one("SELECT max(id) FROM kpi")[0]
    assert os.path.getsize(res.path) > 0
