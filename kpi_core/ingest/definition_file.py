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

from kpi_core.access import ROLE_NAMES, Actor, can
from kpi_core.catalog import Catalog
from kpi_core.errors import LinesError, ScopeError
from kpi_core.ingest import profile, sources, target_mapping
from kpi_core.ingest.template import STORED
from kpi_core.messages import Items, Message
from kpi_core.references import mask
from kpi_core.texts import N_
from kpi_core.warehouse import Warehouse

KINDS = ("profile", "source", "targets")
Path = tuple[str | int, ...]  # a place in the file: keys, and list positions from 0


class DefinitionError(LinesError):
    """A profile or source file that cannot be used."""


# What a file describes, as a message names it; the command that reads it keeps its name.
KIND_WORDS = {
    "profile": Message("df_w_profile"),
    "source": Message("df_w_source"),
    "targets": Message("df_w_targets"),
}


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
        role = Message(ROLE_NAMES[who.role]) if who.role in ROLE_NAMES else who.role
        raise ScopeError(
            Message(
                "df_who_reads_profiles" if kind == "profile" else "df_who_reads_sources",
                user=who.name,
                role=role,
            )
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
        raise DefinitionError([Message("df_at", where=where, problem=Message("df_type"))])
    if kind == "targets":
        return read_target_mapping(text, file)
    return read_profile(text, file, cat) if kind == "profile" else read_source(text, file, cat)


def read_profile(text: str, file: str, cat: Catalog | None = None) -> profile.Profile:
    data = _kind(text, file, "profile")
    p = _build(profile.Profile, data, (), text, file)
    problems: list[tuple[Path, Message | str]] = [(_profile_path(q), q) for q in p.problems()]
    problems += _catalog_problems(p, cat, ())
    _refuse(problems, text, file)
    return p


def read_source(text: str, file: str, cat: Catalog | None = None) -> sources.Source:
    data = _kind(text, file, "source")
    mapping = data.get("mapping")
    if isinstance(mapping, dict) and "name" not in mapping:
        data["mapping"] = {"name": "", **mapping}
    s = _build(sources.Source, data, (), text, file)
    own = s.mapping.problems()
    problems: list[tuple[Path, Message | str]] = []
    for q in s.problems():
        if q in own:
            problems.append((("mapping", *_profile_path(q)), q))
        elif q == _said(sources.check_url, s.url):
            problems.append((("url",), q))
        elif q == _said(sources.check_query, s.query, s.url):
            problems.append((("query",), q))
        elif q == sources.NO_NAME:
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


def _said(check, *args) -> Message | str | None:
    try:
        check(*args)
    except sources.SourceError as exc:
        return exc.said()
    return None


def _parse(text: str, file: str) -> dict:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        # The parser's own words stay as it says them; where it stopped is said the local way.
        said = str(exc)
        if at := _AT.fullmatch(said):
            problem = Message("df_not_toml_at", file=file, detail=at[1], line=int(at[2]),
                              column=int(at[3]))  # fmt: skip
        else:
            problem = Message("df_not_toml", file=file, detail=said)
        raise DefinitionError([problem]) from None


_AT = re.compile(r"(.*) \(at line (\d+), column (\d+)\)", re.S)


def _kind(text: str, file: str, want: str) -> dict:
    data = _parse(text, file)
    kind = data.pop("type", want)
    if kind != want:
        what = Message(
            "df_wrong_kind", kind=KIND_WORDS.get(kind, kind), want=KIND_WORDS[want], command=kind
        )
        raise DefinitionError([Message("df_at", where=_where(file, text, ("type",)), problem=what)])
    return data


def _refuse(problems: list[tuple[Path, Message | str]], text: str, file: str) -> None:
    if problems:
        raise DefinitionError(
            [Message("df_at", where=_where(file, text, path), problem=q) for path, q in problems]
        )


# The field a profile's problem is about, by its key (the line of that key, when written).
_FIELD_OF = {
    "pf_no_name": ("name",),
    "pf_no_date_column": ("date_column",),
    "pf_no_unit": ("unit_column",),
    "pf_no_measures": ("measures",),
    "pf_header_row": ("header_row",),
}

# What a measure's problem is about: its own fields by key; a problem of its expression (or one
# made of its columns) is about its `column`, which holds the expression.
_MEASURE_KEY = {"pf_choose_kpi": "kpi", "df_no_kpi": "kpi", "df_kpi_computed": "kpi",
                "pf_agg": "agg", "pf_choose_column": "column", "pf_filter_op": "filters",
                "pf_filter_on": "filters", "pf_not_in_file": None, "pf_not_in_result": None}  # fmt: skip


def _profile_path(problem: Message | str) -> Path:
    if not isinstance(problem, Message):
        return ()  # a date format's problem (dates.check_format): the profile's own
    if problem.key in ("pf_measure", "pf_measure_kpi"):
        inner = problem.values["problem"]
        key = _MEASURE_KEY.get(inner.key, "column") if isinstance(inner, Message) else "column"
        i = int(problem.values["i"])  # type: ignore[call-overload]
        return ("measures", i - 1, *((key,) if key else ()))
    return _FIELD_OF.get(problem.key, ())


def _catalog_problems(
    p: profile.Profile, cat: Catalog | None, at: Path
) -> list[tuple[Path, Message | str]]:
    """What the page's choice lists would not have offered: an unknown KPI or unit."""
    if cat is None or not cat.kpis:
        return []
    out: list[tuple[Path, Message | str]] = []
    for i, m in enumerate(p.measures, start=1):
        k = cat.kpi_by_code.get(m.kpi)
        where = (*at, "measures", i - 1, "kpi")
        if m.kpi and k is None:
            out.append(
                (where, Message("pf_measure", i=i, problem=Message("df_no_kpi", code=m.kpi)))
            )
        elif k is not None and k.aggregation not in STORED:
            computed = Message("df_kpi_computed", code=m.kpi, agg=k.aggregation)
            out.append((where, Message("pf_measure", i=i, problem=computed)))
    if p.unit and not p.unit_column and p.unit not in cat.unit_by_code:
        out.append(((*at, "unit"), Message("df_no_unit", code=p.unit)))
    for value, code in p.unit_map.items():
        if code not in cat.unit_by_code:
            out.append(((*at, "unit_map", value), Message("df_not_a_unit", value=value, code=code)))
    return out


# --- fields from the file, by the dataclass ---------------------------------------------------


def from_data(cls: type, data: dict, text: str, file: str):
    """An instance of the dataclass `cls` from a file's data, field by field; `text` (the file)
    and `file` (its name) place a problem on its line."""
    return _build(cls, data, (), text, file)


def _build(cls: type, data: object, path: Path, text: str, file: str):
    if not isinstance(data, dict):
        _wrong(path, Message("df_must_table", place=_name(path)), text, file)
    hints = typing.get_type_hints(cls)
    own = {f.name: f for f in fields(cls) if f.init}
    problems: list[Message | str] = []
    keys = Items(own, commas=True)
    for key in data:
        if key not in own:
            unknown = (
                Message("df_unknown_key", key=key, place=_name(path), keys=keys)
                if path
                else Message("df_unknown_top_key", key=key, keys=keys)
            )
            problems.append(
                Message("df_at", where=_where(file, text, (*path, key)), problem=unknown)
            )
    for name, f in own.items():
        if name not in data and f.default is MISSING and f.default_factory is MISSING:
            missing = (
                Message("df_missing_key", key=name, place=_name(path))
                if path
                else Message("df_missing_top_key", key=name)
            )
            problems.append(Message("df_at", where=_where(file, text, path), problem=missing))
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
            _wrong(path, Message("df_must_list", place=_name(path)), text, file)
        return [_value(args[0], x, (*path, i), text, file) for i, x in enumerate(v)]
    if origin is dict:
        if not isinstance(v, dict):
            _wrong(path, Message("df_must_table", place=_name(path)), text, file)
        return {str(k): _value(args[1], x, (*path, k), text, file) for k, x in v.items()}
    if origin is typing.Literal:
        if v not in args:
            _wrong(path, _one_of(path, map(repr, args)), text, file)
        return v
    if is_dataclass(tp):
        return _build(tp, v, path, text, file)  # type: ignore[arg-type]
    if isinstance(tp, type) and issubclass(tp, Enum):
        try:
            return tp(v)
        except ValueError:
            _wrong(path, _one_of(path, (repr(e.value) for e in tp)), text, file)
    checks = {
        bool: (lambda x: isinstance(x, bool), N_("df_must_bool")),
        int: (lambda x: isinstance(x, int) and not isinstance(x, bool), N_("df_must_int")),
        float: (
            lambda x: isinstance(x, (int, float)) and not isinstance(x, bool),
            N_("df_must_number"),
        ),
        str: (lambda x: isinstance(x, str), N_("df_must_text")),
        date: (lambda x: isinstance(x, date) and not isinstance(x, datetime), N_("df_must_day")),
    }
    if tp in checks:
        ok, key = checks[tp]
        if not ok(v):
            _wrong(path, Message(key, place=_name(path)), text, file)
        return float(v) if tp is float else v
    return v


def _one_of(path: Path, options) -> Message:
    return Message("df_must_one_of", place=_name(path), options=Items(options, commas=True))


def _wrong(path: Path, problem: Message, text: str, file: str) -> typing.NoReturn:
    raise DefinitionError([Message("df_at", where=_where(file, text, path), problem=problem)])


def _name(path: Path) -> Message:
    """'measures[2].filters[1].op' — list positions counted from 1, as people count; the file
    itself when the path is empty."""
    out = ""
    for part in path:
        out += f"[{part + 1}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return Message("df_key", key=out) if out else Message("df_the_file")


def _where(file: str, text: str, path: Path) -> Message | str:
    line = line_of(text, path)
    return Message("df_line", file=file, line=line) if line else file


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
