"""Mapping profiles and database sources as readable TOML files, to keep them in version control
and move them between warehouses (`python -m kpi_core profile|source …`, and the download /
upload buttons of the Upload and Sources pages).

The file is written and read field by field from the dataclasses (`Profile`, `Measure`,
`Filter`, `Source`), so a field added to one of them flows through without a change here: a
field left out of a file takes its default, a key the dataclass does not have is refused with
its name and line. TOML has no null, so a field that is None is simply not written.

A source's URL holds no secret — its password is a reference (`${secrets.source_secrets.erp}`)
resolved only to connect — and a file keeps that reference, never its value. A URL that holds a
literal password anyway (saved before the rule) is written masked (`***`), which a save refuses.

Reading checks what the pages check before their Save button is enabled: the profile's or
source's own `problems()`, and that each KPI and unit it names exists (a measure's KPI must hold
loaded values, not be computed). Every problem is named with the line of the file it is on.
"""

from __future__ import annotations

import re
import tomllib
import types
import typing
from dataclasses import MISSING, fields, is_dataclass
from datetime import date, datetime
from enum import Enum

import tomli_w

from kpi_core.access import Actor, can
from kpi_core.catalog import Catalog
from kpi_core.errors import KpiError, ScopeError
from kpi_core.ingest import profile, sources, target_mapping
from kpi_core.ingest.template import STORED
from kpi_core.references import mask
from kpi_core.warehouse import Warehouse

KINDS = ("profile", "source", "targets")
Path = tuple[str | int, ...]  # a place in the file: keys, and list positions from 0


class DefinitionError(KpiError):
    """A profile or source file that cannot be used; `lines` holds one problem a line."""

    def __init__(self, lines: list[str]):
        super().__init__("\n".join(lines))
        self.lines = lines


# --- writing ----------------------------------------------------------------------------------


def profile_text(p: profile.Profile) -> str:
    return _text("profile", to_data(p))


def source_text(s: sources.Source) -> str:
    data = to_data(s)
    data["url"] = _safe_url(s.url)
    data["mapping"].pop("name", None)  # a source's mapping is named after the source
    # The mapping's table goes last: TOML puts plain keys before tables anyway.
    data["mapping"] = data.pop("mapping")
    return _text("source", data)


def _text(kind: str, data: dict) -> str:
    head = {
        "profile": "# KPI Monitor profile: python -m kpi_core profile save FILE (or the Upload "
        "page) reads it back.\n",
        "source": "# KPI Monitor source: python -m kpi_core source save FILE (or the Sources "
        "page) reads it back.\n",
        "targets": "# KPI Monitor target mapping: python -m kpi_core targets SHEET --mapping "
        "FILE loads a sheet's targets with it.\n",
    }[kind]
    return head + tomli_w.dumps({"type": kind, **data}, multiline_strings=True)


def _safe_url(url: str) -> str:
    """The URL as stored when its password is a reference; masked if it holds a literal one."""
    try:
        sources.check_url(url)
    except sources.SourceError:
        return mask(url)
    return url


def to_data(obj: object) -> dict:
    """A dataclass as TOML's plain data, field by field (None and empty ones left out)."""
    out = {}
    for f in fields(obj):
        v = _plain(getattr(obj, f.name))
        if v is None or v == [] or v == {}:
            continue  # TOML has no null; an empty list or table is the default
        out[f.name] = v
    return out


def _plain(v: object) -> object:
    if is_dataclass(v) and not isinstance(v, type):
        return to_data(v)
    if isinstance(v, Enum):
        return v.value
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in v.items()}
    return v


# --- the saved ones --------------------------------------------------------------------------

# Who may read a saved definition: those who may write one (a source's query tells how the
# company's databases are laid out; a profile is the Upload page's own).
READERS = {"profile": "save_profiles", "source": "define_sources"}  # kind -> access action


def may_read(who: Actor, kind: str) -> None:
    if not can(who, READERS[kind]):
        raise ScopeError(
            f"User '{who.name}' ({who.role}) cannot read {kind} definitions — "
            + (
                "analysts, department heads and admins do."
                if kind == "profile"
                else "analysts and admins do."
            )  # fmt: skip
        )


def export_text(wh: Warehouse, kind: str, name: str) -> str:
    if kind == "profile":
        return profile_text(profile.load(wh, name))
    return source_text(sources.load(wh, name))


def saved_note(wh: Warehouse, kind: str, name: str) -> str:
    """Who saved the definition and when, as TOML comments (what `show` adds to the file)."""
    table = "import_profile" if kind == "profile" else "source"
    got = wh.one(f"SELECT updated_by, updated_at FROM {table} WHERE name = ?", [name])  # noqa: S608
    if not got:
        return ""
    return f"# saved by {got[0] or '?'} at {got[1]:%Y-%m-%d %H:%M}\n"


def listing(wh: Warehouse, kind: str) -> list[tuple[str, str, str]]:
    """Name, who saved it and when; a source also with its masked URL."""
    if kind == "profile":
        rows = wh.rows("SELECT name, updated_by, updated_at FROM import_profile ORDER BY name")
        return [(n, by or "?", f"{at:%Y-%m-%d %H:%M}") for n, by, at in rows]
    rows = wh.rows("SELECT name, updated_by, updated_at, url FROM source ORDER BY name")
    return [(n, by or "?", f"{at:%Y-%m-%d %H:%M}", mask(url)) for n, by, at, url in rows]


# --- reading ----------------------------------------------------------------------------------


def read(text: str, file: str, cat: Catalog | None = None) -> profile.Profile | sources.Source:
    """The profile or source a file describes, checked like the pages check it; or
    DefinitionError naming each problem's line."""
    data = _parse(text, file)
    kind = data.get("type")
    if kind not in KINDS:
        where = _where(file, text, ("type",) if "type" in data else ())
        raise DefinitionError(
            [
                f'{where}: \'type\' must be "profile", "source" or "targets" — the first line of the file '
                "says which it describes"
            ]  # fmt: skip
        )
    if kind == "targets":
        return read_target_mapping(text, file)
    return read_profile(text, file, cat) if kind == "profile" else read_source(text, file, cat)


def read_profile(text: str, file: str, cat: Catalog | None = None) -> profile.Profile:
    data = _kind(text, file, "profile")
    p = _build(profile.Profile, data, (), text, file)
    problems = [(_profile_path(q), q) for q in p.problems()]
    problems += _catalog_problems(p, cat, ())
    _refuse(problems, text, file)
    return p


def read_source(text: str, file: str, cat: Catalog | None = None) -> sources.Source:
    data = _kind(text, file, "source")
    mapping = data.get("mapping")
    if isinstance(mapping, dict) and "name" not in mapping:
        data["mapping"] = {"name": "", **mapping}
    s = _build(sources.Source, data, (), text, file)
    own = set(s.mapping.problems())
    problems: list[tuple[Path, str]] = []
    for q in s.problems():
        if q in own:
            problems.append((("mapping", *_profile_path(q)), q))
        elif q == _said(sources.check_url, s.url):
            problems.append((("url",), q))
        elif q == _said(sources.check_query, s.query, s.url):
            problems.append((("query",), q))
        elif q == "give the source a name":
            problems.append((("name",), q))
        else:
            problems.append(((), q))
    problems += _catalog_problems(s.mapping, cat, ("mapping",))
    _refuse(problems, text, file)
    return s


def read_target_mapping(text: str, file: str) -> target_mapping.TargetMapping:
    """A target mapping (`type = "targets"`); its KPIs and units are checked row by row when it
    is applied to a sheet, where the file's values are."""
    data = _kind(text, file, "targets")
    m = _build(target_mapping.TargetMapping, data, (), text, file)
    _refuse([((), q) for q in m.problems()], text, file)
    return m


def target_mapping_text(m: target_mapping.TargetMapping) -> str:
    return _text("targets", to_data(m))


def _said(check, *args) -> str | None:
    try:
        check(*args)
    except sources.SourceError as exc:
        return str(exc)
    return None


def _parse(text: str, file: str) -> dict:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise DefinitionError([f"{file} is not valid TOML: {exc}"]) from None


def _kind(text: str, file: str, want: str) -> dict:
    data = _parse(text, file)
    kind = data.pop("type", want)
    if kind != want:
        raise DefinitionError(
            [
                f"{_where(file, text, ('type',))}: the file describes a {kind}, not a {want} — "
                f"use the {kind} command or page for it"
            ]  # fmt: skip
        )
    return data


def _refuse(problems: list[tuple[Path, str]], text: str, file: str) -> None:
    if problems:
        raise DefinitionError([f"{_where(file, text, path)}: {q}" for path, q in problems])


_MEASURE = re.compile(r"^measure (\d+): ")
_FIELD_OF = {
    "give the profile a name": ("name",),
    "choose the date column": ("date_column",),
    "choose the unit column, or one unit for all rows": ("unit_column",),
    "add at least one measure (a KPI and how to compute it)": ("measures",),
    "the header row is counted from 1": ("header_row",),
}


# What a measure's problem is about, by its words (the line of that key, when written).
_MEASURE_KEY = (("choose the KPI", "kpi"), ("aggregation", "agg"), ("choose the column", "column"),
                ("expression", "column"), ("formula", "column"), ("filter", "filters"))  # fmt: skip


def _profile_path(problem: str) -> Path:
    if m := _MEASURE.match(problem):
        rest = problem[m.end() :]
        key = next((k for words, k in _MEASURE_KEY if words in rest), None)
        return ("measures", int(m.group(1)) - 1, *((key,) if key else ()))
    return _FIELD_OF.get(problem, ())


def _catalog_problems(p: profile.Profile, cat: Catalog | None, at: Path) -> list[tuple[Path, str]]:
    """What the page's choice lists would not have offered: an unknown KPI or unit."""
    if cat is None or not cat.kpis:
        return []
    out: list[tuple[Path, str]] = []
    for i, m in enumerate(p.measures, start=1):
        k = cat.kpi_by_code.get(m.kpi)
        if m.kpi and k is None:
            out.append(((*at, "measures", i - 1, "kpi"), f"measure {i}: there is no KPI '{m.kpi}'"))
        elif k is not None and k.aggregation not in STORED:
            out.append(
                (
                    (*at, "measures", i - 1, "kpi"),
                    f"measure {i}: KPI '{m.kpi}' is computed ({k.aggregation}), not loaded — "
                    "give the KPIs it is computed from",
                )  # fmt: skip
            )
    if p.unit and not p.unit_column and p.unit not in cat.unit_by_code:
        out.append(((*at, "unit"), f"there is no org unit '{p.unit}'"))
    for value, code in p.unit_map.items():
        if code not in cat.unit_by_code:
            out.append(
                (
                    (*at, "unit_map", value),
                    f"'{value}' is mapped to '{code}', which is not an org unit",
                )
            )
    return out


# --- fields from the file, by the dataclass ---------------------------------------------------


def from_data(cls: type, data: dict, text: str, file: str):
    """An instance of the dataclass `cls` from a file's data, field by field; `text` (the file)
    and `file` (its name) place a problem on its line."""
    return _build(cls, data, (), text, file)


def _build(cls: type, data: object, path: Path, text: str, file: str):
    if not isinstance(data, dict):
        raise DefinitionError([f"{_where(file, text, path)}: {_name(path)} must be a table"])
    hints = typing.get_type_hints(cls)
    own = {f.name: f for f in fields(cls) if f.init}
    problems = []
    for key in data:
        if key not in own:
            problems.append(
                f"{_where(file, text, (*path, key))}: unknown key '{key}' in {_place(path)} — "
                f"the keys there are {', '.join(own)}"
            )
    for name, f in own.items():
        if name not in data and f.default is MISSING and f.default_factory is MISSING:
            problems.append(f"{_where(file, text, path)}: '{name}' is missing in {_place(path)}")
    if problems:
        raise DefinitionError(problems)
    return cls(
        **{k: _value(hints[k], v, (*path, k), text, file) for k, v in data.items()}  # type: ignore[arg-type]
    )


def _value(tp: object, v: object, path: Path, text: str, file: str) -> object:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        kinds = [a for a in args if a is not type(None)]
        return _value(kinds[0] if len(kinds) == 1 else object, v, path, text, file)
    if origin is list:
        if not isinstance(v, list):
            _wrong(path, "a list", text, file)
        return [_value(args[0], x, (*path, i), text, file) for i, x in enumerate(v)]
    if origin is dict:
        if not isinstance(v, dict):
            _wrong(path, "a table", text, file)
        return {str(k): _value(args[1], x, (*path, k), text, file) for k, x in v.items()}
    if origin is typing.Literal:
        if v not in args:
            _wrong(path, "one of " + ", ".join(map(repr, args)), text, file)
        return v
    if is_dataclass(tp):
        return _build(tp, v, path, text, file)  # type: ignore[arg-type]
    if isinstance(tp, type) and issubclass(tp, Enum):
        try:
            return tp(v)
        except ValueError:
            _wrong(path, "one of " + ", ".join(repr(e.value) for e in tp), text, file)
    checks = {
        bool: (lambda x: isinstance(x, bool), "true or false"),
        int: (lambda x: isinstance(x, int) and not isinstance(x, bool), "a whole number"),
        float: (lambda x: isinstance(x, (int, float)) and not isinstance(x, bool), "a number"),
        str: (lambda x: isinstance(x, str), "text in quotes"),
        date: (lambda x: isinstance(x, date) and not isinstance(x, datetime), "a day (2026-03-15)"),
    }
    if tp in checks:
        ok, what = checks[tp]
        if not ok(v):
            _wrong(path, what, text, file)
        return float(v) if tp is float else v
    return v


def _wrong(path: Path, what: str, text: str, file: str) -> typing.NoReturn:
    raise DefinitionError([f"{_where(file, text, path)}: {_name(path)} must be {what}"])


def _name(path: Path) -> str:
    """measures[2].filters[1].op — list positions counted from 1, as people count."""
    out = ""
    for part in path:
        out += f"[{part + 1}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return f"'{out}'" if out else "the file"


def _place(path: Path) -> str:
    return "the file's top level" if not path else _name(path)


def _where(file: str, text: str, path: Path) -> str:
    line = line_of(text, path)
    return f"{file} line {line}" if line else file


# --- lines --------------------------------------------------------------------------------


_HEADER = re.compile(r"^\s*(\[\[?)\s*(.+?)\s*\]\]?\s*(#.*)?$")
_KEY = re.compile(r"^\s*((?:[A-Za-z0-9_-]+|\"(?:[^\"\\]|\\.)*\"|'[^']*')"
                  r"(?:\s*\.\s*(?:[A-Za-z0-9_-]+|\"(?:[^\"\\]|\\.)*\"|'[^']*'))*)\s*=")  # fmt: skip
_PART = re.compile(r"[A-Za-z0-9_-]+|\"(?:[^\"\\]|\\.)*\"|'[^']*'")


def _keys(dotted: str) -> list[str]:
    out = []
    for part in _PART.findall(dotted):
        if part.startswith('"'):
            part = tomllib.loads(f"k = {part}")["k"]
        elif part.startswith("'"):
            part = part[1:-1]
        out.append(part)
    return out


def line_of(text: str, path: Path) -> int | None:
    """The line (from 1) that holds `path` — or, if it is not written, of the nearest table or
    key around it; None when the file has no such place at all."""
    seen: dict[Path, int] = {}
    arrays: dict[Path, int] = {}
    table: Path = ()
    quote = None  # inside a multi-line string
    for number, line in enumerate(text.splitlines(), start=1):
        if quote:
            if line.count(quote) % 2:
                quote = None
            continue
        if (h := _HEADER.match(line)) and not _KEY.match(line):
            keys = _keys(h.group(2))
            here: Path = ()
            for k in keys[:-1]:
                here = (*here, k)
                if here in arrays:
                    here = (*here, arrays[here] - 1)
            here = (*here, keys[-1])
            if h.group(1) == "[[":
                arrays[here] = arrays.get(here, 0) + 1
                here = (*here, arrays[here] - 1)
            table = here
            seen.setdefault(table, number)
        elif k := _KEY.match(line):
            seen.setdefault((*table, *_keys(k.group(1))), number)
            rest = line[k.end() :]
            for q in ('"""', "'''"):
                if rest.count(q) % 2:
                    quote = q
                    break
    for end in range(len(path), -1, -1):
        if path[:end] in seen:
            return seen[path[:end]]
    return None
