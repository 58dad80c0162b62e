"""Convention tests that keep the project honest."""

import argparse
import ast
import functools
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_core_never_imports_streamlit():
    offenders = [
        p.relative_to(ROOT).as_posix()
        for p in (ROOT / "kpi_core").rglob("*.py")
        if "ui" not in p.relative_to(ROOT / "kpi_core").parts[:1]
        and "streamlit" in imported_modules(p)
    ]
    assert offenders == []


def test_only_the_audit_module_writes_the_audit_table():
    # Every audit row goes through audit.record / audit.record_many, so the columns are named
    # in one place and a change of the table touches one module.
    write = re.compile(r"INSERT\s+(OR\s+\w+\s+)?INTO\s+\"?audit\b", re.I)
    offenders = [
        p.relative_to(ROOT).as_posix()
        for p in (ROOT / "kpi_core").rglob("*.py")
        if p != ROOT / "kpi_core" / "audit.py" and write.search(p.read_text(encoding="utf-8"))
    ]
    assert offenders == []


def test_only_the_targets_module_writes_target_versions():
    # Planning's grid and the system import both add versions through targets.add_versions.
    write = re.compile(r"INSERT\s+(OR\s+\w+\s+)?INTO\s+\"?target\b", re.I)
    offenders = [
        p.relative_to(ROOT).as_posix()
        for p in (ROOT / "kpi_core").rglob("*.py")
        if p != ROOT / "kpi_core" / "targets.py" and write.search(p.read_text(encoding="utf-8"))
    ]
    assert offenders == []


def test_pages_hold_no_sql():
    for page in [ROOT / "app.py", *(ROOT / "pages").glob("*.py")]:
        text = page.read_text(encoding="utf-8")
        assert not re.search(r"\b(SELECT|INSERT|UPDATE|DELETE)\b", text), page.name
        assert "duckdb" not in imported_modules(page), page.name


def test_every_page_is_named_in_the_readme():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for page in (ROOT / "pages").glob("*.py"):
        assert page.name in readme, f"README does not mention {page.name}"


def _command_list() -> argparse._SubParsersAction:
    """The commands as the parser itself knows them (not a list kept by hand)."""
    from kpi_core import cli

    parser = cli._parser()
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return sub


def test_every_cli_command_has_help():
    sub = _command_list()
    assert {"init", "import", "score", "export", "pull", "alerts"} <= set(sub.choices)
    summaries = {c.dest: c.help for c in sub._choices_actions}
    listing = subprocess.run(
        [sys.executable, "-m", "kpi_core", "--help"], capture_output=True, text=True, check=True
    ).stdout
    for name in sub.choices:
        assert summaries.get(name), f"'{name}' has no one-line help in the command list"
        assert re.search(rf"^\s+{re.escape(name)}\s", listing, re.M), f"--help omits '{name}'"
        # Each command's own help from the parser itself (test_cli runs `COMMAND --help` in a
        # process of its own for the main ones): a process per command cost ~0.6 s each.
        own = sub.choices[name].format_help()
        assert own.startswith("usage:") and len(own.splitlines()) > 2, name


# Imported by a child process: every module of the package, with duckdb's and sqlite3's connect
# replaced by a recorder, and the warehouse pointed at a path whose folder does not exist yet.
# Root may create that folder, so the check is what was called and what appeared on disk, not
# whether a connection failed.
_IMPORT_ALL = """
import duckdb, importlib, pkgutil, sqlite3, sys
calls = []
def record(real):
    def connect(*args, **kwargs):
        calls.append(args[:1])
        return real(*args, **kwargs)
    return connect
duckdb.connect = record(duckdb.connect)
sqlite3.connect = record(sqlite3.connect)
import kpi_core
names = [m.name for m in pkgutil.walk_packages(kpi_core.__path__, "kpi_core.")]
skip = {"kpi_core.__main__"}
for name in names:
    if name not in skip:
        importlib.import_module(name)
print(len(names), calls)
"""


def test_importing_the_core_opens_no_connection(tmp_path):
    target = tmp_path / "not-yet" / "w.duckdb"
    out = subprocess.run(
        [sys.executable, "-c", _IMPORT_ALL],
        capture_output=True, text=True, check=True, cwd=ROOT,
        env={"KPI_WAREHOUSE": str(target), "PATH": "", "HOME": str(tmp_path)},
    )  # fmt: skip
    count, calls = out.stdout.split(" ", 1)
    assert int(count) > 40  # every module, pages' helpers in kpi_core.ui included
    assert calls.strip() == "[]", f"a module opens a connection when imported: {calls}"
    assert not target.parent.exists(), "a module created the warehouse's folder when imported"


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```bash\n(.+?)\n```", readme, flags=re.S)
    install_and_run, test = blocks[0], blocks[1]
    assert "streamlit run app.py" in install_and_run
    assert "pytest" in test and "ruff check" in test
    assert test in (ROOT / ".ci" / "run").read_text(encoding="utf-8")


def test_shipped_demo_workbook_matches_the_generator():
    from kpi_core import demo, workbook

    shipped = workbook.read(workbook.DEMO_WORKBOOK)
    fresh = workbook.read(workbook.to_bytes(demo.build_demo()))
    assert {k: s.rows for k, s in shipped.items()} == {k: s.rows for k, s in fresh.items()}


def test_every_demo_kpi_is_bilingual_with_unit_and_caliber():
    from kpi_core import demo

    kpis = demo.build_demo()["kpis"]
    for _, k in kpis.iterrows():
        assert k["name_zh"] and k["name_en"] and k["name_zh"] != k["name_en"], k["code"]
        assert k["unit"] and k["caliber"], k["code"]


def role_checks(path: Path) -> list[str]:
    """Places that name roles for a permission: a literal tuple, list or set of role names, or
    a comparison of someone's `.role` with a role name."""
    from kpi_core.access import ROLES

    def is_role(node: ast.AST) -> bool:
        return isinstance(node, ast.Constant) and node.value in ROLES

    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Tuple | ast.List | ast.Set) and node.elts:
            if all(is_role(e) for e in node.elts):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
        elif isinstance(node, ast.Compare):
            sides = [node.left, *node.comparators]
            if any(isinstance(s, ast.Attribute) and s.attr == "role" for s in sides) and any(
                is_role(s) for s in sides
            ):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    return found


def test_roles_are_named_for_permissions_only_in_access():
    """Who may do what lives in `access.ACTIONS`; everything else asks `access.can`."""
    files = [ROOT / "app.py", *(ROOT / "pages").glob("*.py"), *(ROOT / "kpi_core").rglob("*.py")]
    offenders = [
        hit for f in files if f != ROOT / "kpi_core" / "access.py" for hit in role_checks(f)
    ]
    assert offenders == []


def _type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def runtime_nodes(tree: ast.AST) -> list[ast.AST]:
    """Every node that may run: inside functions and classes too, but not the body of an
    `if TYPE_CHECKING:` (names for hints only, never imported at run time)."""
    out, stack = [], [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _type_checking(node.test):
            stack.extend(node.orelse)
            continue
        out.append(node)
        stack.extend(ast.iter_child_nodes(node))
    return out


def core_imports(everywhere: bool = False) -> dict[str, set[str]]:
    """kpi_core module → the kpi_core modules it imports: at module level, or `everywhere`
    (inside functions too). `from kpi_core.x import y` counts as x.y when that is a module.
    Parsed once per run (the tree does not change during it); each caller gets its own copy."""
    return {module: set(names) for module, names in _core_imports(everywhere).items()}


@functools.cache
def _core_imports(everywhere: bool) -> dict[str, frozenset[str]]:
    modules = {}
    for p in (ROOT / "kpi_core").rglob("*.py"):
        parts = p.relative_to(ROOT).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = p

    def known(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        found: set[str] = set()
        for node in runtime_nodes(tree) if everywhere else tree.body:
            if isinstance(node, ast.Import):
                found |= {known(a.name) for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                found |= {known(f"{node.module}.{a.name}") for a in node.names}
        graph[name] = {m for m in found if m and m != name}
    return graph


def cycle(graph: dict[str, set[str]]) -> list[str]:
    """One import cycle of the graph ([] when there is none), as the modules along it."""
    done: set[str] = set()

    def visit(node: str, path: list[str]) -> list[str]:
        if node in path:
            return path[path.index(node) :] + [node]
        if node in done:
            return []
        for nxt in sorted(graph.get(node, ())):
            if found := visit(nxt, [*path, node]):
                return found
        done.add(node)
        return []

    for start in sorted(graph):
        if found := visit(start, []):
            return found
    return []


def test_core_modules_import_each_other_without_a_cycle():
    """At module level (where a cycle breaks an import): a split module's parts import only
    those below them."""
    assert cycle(core_imports()) == []
    assert cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def test_push_never_imports_alerts():
    """Alerts hand their messages to push (alerts/pushes.py); push knows nothing of alerts,
    not even inside a function."""
    graph = core_imports(everywhere=True)
    pushing = [m for m in graph if m == "kpi_core.push" or m.startswith("kpi_core.push.")]
    assert len(pushing) > 1
    assert [(m, sorted(graph[m])) for m in pushing if any("alerts" in n for n in graph[m])] == []


def test_no_import_cycle_even_inside_functions():
    """An import inside a function is a cycle put off, not avoided: the graph with every runtime
    import (hints under `if TYPE_CHECKING:` aside) has no cycle either."""
    assert cycle(core_imports(everywhere=True)) == []
    hidden = ast.parse("if TYPE_CHECKING:\n    import a\ndef f():\n    import b\n")
    found = {a.name for n in runtime_nodes(hidden) if isinstance(n, ast.Import) for a in n.names}
    assert found == {"b"}


def test_the_core_never_imports_the_ui():
    graph = core_imports(everywhere=True)
    offenders = [
        (m, sorted(d for d in deps if d == "kpi_core.ui" or d.startswith("kpi_core.ui.")))
        for m, deps in graph.items()
        if m != "kpi_core.ui" and not m.startswith("kpi_core.ui.")
    ]
    assert [o for o in offenders if o[1]] == []


def test_the_warehouse_builds_on_nothing_above_it():
    """warehouse.py is the bottom layer: settings, errors (with the coded messages they carry:
    messages, texts), migrations, how its file is shared (shared_file) with its lock files and
    waits (gate, pauses) only; and its PostgreSQL twin (kpi_core/pg_warehouse.py, its
    dialect and its COPY reads) on the same."""
    below = {
        "kpi_core.settings", "kpi_core.errors", "kpi_core.messages", "kpi_core.texts",
        "kpi_core.migrations", "kpi_core.gate", "kpi_core.pauses", "kpi_core.shared_file",
    }  # fmt: skip
    pg = {"kpi_core.pg_warehouse", "kpi_core.pg_dialect", "kpi_core.pg_migrations",
          "kpi_core.pg_columns", "kpi_core.dialects"}  # fmt: skip
    graph = core_imports(everywhere=True)
    assert graph["kpi_core.warehouse"] <= below | pg, graph["kpi_core.warehouse"] - below - pg
    for module in pg:
        assert graph[module] <= below | pg, (module, graph[module] - below - pg)
    assert graph["kpi_core.migrations"] <= below, graph["kpi_core.migrations"] - below
    assert graph["kpi_core.shared_file"] <= below, graph["kpi_core.shared_file"] - below


def ui_files() -> list[Path]:
    return [
        ROOT / "app.py",
        *(ROOT / "pages").glob("*.py"),
        *(ROOT / "kpi_core" / "ui").rglob("*.py"),
    ]


def surface_breaches(path: Path, surface: frozenset[str], names: frozenset[str]) -> list[str]:
    """What a UI file imports from the core outside the documented surface (kpi_core's
    UI_SURFACE), and any warehouse name beyond its handle (UI_WAREHOUSE_NAMES)."""
    graph = core_imports(everywhere=True)
    found = []
    for node in runtime_nodes(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            wanted = [(a.name, None) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            wanted = [(f"{node.module}.{a.name}", a.name) for a in node.names]
        else:
            continue
        for full, name in wanted:
            if not full.startswith("kpi_core.") or full.startswith("kpi_core.ui"):
                continue
            module = full if full in graph else full.rpartition(".")[0]
            short = module.removeprefix("kpi_core.")
            top = short.split(".")[0]
            if (
                short == "warehouse"
                and (module == full or name not in names)
                or short not in surface
                and top not in surface
            ):
                found.append(f"{path.relative_to(ROOT)}: {full}")
    return found


def test_the_ui_imports_only_the_documented_surface():
    """kpi_core/__init__.py lists the core modules the pages may use; anything else (or the
    warehouse's internals) imported by a page or kpi_core/ui fails here."""
    import kpi_core

    breaches = [
        b
        for f in ui_files()
        for b in surface_breaches(f, kpi_core.UI_SURFACE, kpi_core.UI_WAREHOUSE_NAMES)
    ]
    assert breaches == []
    # The check itself: the board page without `board` in the surface breaks it.
    page = ROOT / "pages" / "1_Board.py"
    assert surface_breaches(page, kpi_core.UI_SURFACE - {"board"}, kpi_core.UI_WAREHOUSE_NAMES)
    for name in kpi_core.UI_SURFACE:
        module = ROOT / "kpi_core" / Path(*name.split("."))
        assert module.with_suffix(".py").exists() or module.is_dir(), name


# What runs SQL on a warehouse (or a cursor): none of it in the UI, which asks the core.
_QUERIES = {"rows", "one", "df", "arrays", "execute", "transaction", "executemany", "sql"}


def queries(path: Path) -> list[str]:
    return [
        f"{path.relative_to(ROOT)}:{n.lineno}"
        for n in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr in _QUERIES
    ]


def test_the_ui_runs_no_query():
    assert [q for f in ui_files() for q in queries(f)] == []
    assert queries(ROOT / "kpi_core" / "users.py")  # the check finds the core's own queries


def layout_names(readme: str) -> list[str]:
    """The module and package paths README's layout section names under kpi_core/ (two spaces)
    and kpi_core/ui/ (four): 'system_checks, _writer' is system_checks and system_writer,
    'intake_panels/_frames' intake_panels and intake_frames, 'alerts/' a package."""
    block = readme.split("## Layout", 1)[1].split("```", 2)[1]
    names = []
    for line in block.splitlines():
        m = re.match(r"^( {2}| {4})(\S.*?)(?: {2,}|$)", line)
        if not m or not m.group(2).strip():
            continue
        folder = "kpi_core/ui/" if len(m.group(1)) == 4 else "kpi_core/"
        previous = ""
        for token in re.split(r",\s*|/(?=_)", m.group(2)):
            token = token.strip()
            if token.startswith("_"):
                token = previous.split("_")[0] + token
            previous = token
            names.append(folder + token)
    return names


def test_the_readme_layout_names_only_what_exists():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    names = layout_names(readme)
    assert {"kpi_core/system_writer", "kpi_core/ui/intake_frames", "kpi_core/alerts/"} <= set(names)
    missing = [
        n
        for n in names
        if not ((ROOT / n).is_dir() if n.endswith("/") else (ROOT / f"{n}.py").exists())
    ]
    assert missing == []
    assert layout_names("## Layout\n```\n  nowhere, _else\n```\n") == [
        "kpi_core/nowhere",
        "kpi_core/nowhere_else",
    ]
