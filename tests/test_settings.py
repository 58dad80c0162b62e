"""One settings registry: every reader honours `KPI_SECRETS`, nothing else reads the environment
or the secrets file, and README.md's table is the registry."""

import ast
import re
from datetime import datetime
from pathlib import Path

import pytest

from kpi_core import auth, backup, push, references, sessions, settings, sso, warehouse
from kpi_core.ingest import source_files

ROOT = Path(__file__).resolve().parent.parent

SECRETS = """
[warehouse]
path = "{tmp}/elsewhere.duckdb"

[sign_in]
max_failures = 9
cookie_secret = "a-secret-of-at-least-thirty-two-characters-0123456789"

[sso]
groups_claim = "teams"
[sso.groups]
"finance" = {{ role = "head", scope = ["SALES"] }}

[backup]
dir = "{tmp}/our-backups"
keep = 3
max_mb = 7

[sources]
file_dirs = ["{tmp}/exports"]

[source_secrets]
erp = "pa ss"

[push]
allowed_hosts = ["hooks.example.com"]
token = "t0ken"
"""


@pytest.fixture
def other_secrets(tmp_path, monkeypatch):
    """A secrets file outside the project, named by KPI_SECRETS; the environment holds nothing
    that would answer first."""
    path = tmp_path / "site.toml"
    path.write_text(SECRETS.format(tmp=tmp_path.as_posix()), encoding="utf-8")
    monkeypatch.setenv("KPI_SECRETS", str(path))
    monkeypatch.delenv("KPI_WAREHOUSE", raising=False)
    monkeypatch.delenv("KPI_SOURCE_DIRS", raising=False)
    return tmp_path


def test_the_warehouse_path_comes_from_kpi_secrets(other_secrets):
    assert warehouse.resolve_path() == f"{other_secrets.as_posix()}/elsewhere.duckdb"


def test_sign_in_settings_come_from_kpi_secrets(other_secrets, demo_wh):
    assert auth.policy().max_failures == 9
    assert sessions.key(demo_wh, now=datetime(2026, 11, 20)) == (
        b"a-secret-of-at-least-thirty-two-characters-0123456789"
    )


def test_single_sign_on_groups_come_from_kpi_secrets(other_secrets, demo_wh):
    name = sso.resolve(demo_wh, {"email": "fin@example.com", "teams": ["finance"]})
    role = demo_wh.one("SELECT role FROM app_user WHERE name = ?", [name])[0]
    assert role == "head"


def test_backup_settings_come_from_kpi_secrets(other_secrets, demo_wh):
    got = backup.settings(demo_wh)
    assert (got.directory, got.keep) == (other_secrets / "our-backups", 3)
    assert backup.size_limit() == 7 << 20


def test_source_folders_and_secrets_come_from_kpi_secrets(other_secrets):
    assert source_files.source_dirs() == [(other_secrets / "exports").resolve()]
    url = "postgresql://me:${secrets.source_secrets.erp}@db/x"
    assert references.expand(url, vault=references.SOURCES) == "postgresql://me:pa%20ss@db/x"


def test_push_settings_come_from_kpi_secrets(other_secrets):
    assert push.allowed_hosts() == ("hooks.example.com",)
    assert references.expand("${secrets.push.token}", vault=references.PUSH, quote=False) == "t0ken"


def test_an_unlisted_setting_is_an_error():
    with pytest.raises(ValueError, match="KPI_NOPE"):
        settings.env("KPI_NOPE")
    with pytest.raises(ValueError, match=r"\[nope\]"):
        settings.section("nope")
    assert settings.env("KPI_PUSH_SECRET_ANYTHING") is None  # under a listed prefix


def readers(path: Path) -> list[str]:
    """Places that read the environment or a secrets file themselves."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        hit = (
            (isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv"))
            or (isinstance(node, ast.Name) and node.id == "SECRETS_PATH")
            or (isinstance(node, ast.Attribute) and node.attr == "SECRETS_PATH")
        )
        if hit:
            found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    return found


def test_only_the_settings_module_reads_settings():
    files = [ROOT / "app.py", *(ROOT / "pages").glob("*.py"), *(ROOT / "kpi_core").rglob("*.py")]
    mine = ROOT / "kpi_core" / "settings.py"
    assert [hit for f in files if f != mine for hit in readers(f)] == []


def readme_table() -> str:
    lines = ["| Setting | Default | What it does |", "|---|---|---|"]
    lines += [f"| `{s.name}` | {s.default} | {s.meaning} |" for s in settings.SETTINGS]
    return "\n".join(lines)


def test_the_readme_table_is_the_registry():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    found = re.search(r"^\| Setting \|.*?(?=\n\n)", readme, re.M | re.S)
    assert found, "README.md has no settings table; paste:\n" + readme_table()
    assert found.group(0) == readme_table(), "README.md's table is stale; paste:\n" + readme_table()
