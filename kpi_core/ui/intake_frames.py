"""What the Upload and Sources pages show of an intake, as plain pandas frames and texts (no
streamlit): findings, changes, effects on the lights, history, measures and records.
"""

from __future__ import annotations

import hashlib
import json
import math
from datetime import date

import pandas as pd

from kpi_core import i18n
from kpi_core.catalog import Catalog
from kpi_core.ingest import intake, places, profile
from kpi_core.ingest.layout import FIELDS, Finding
from kpi_core.ingest.names import norm
from kpi_core.messages import Message
from kpi_core.texts import N_

SEVERITIES = ("error", "warning", "info")


CHANGES = ("new", "changed", "removed", "unchanged")


COUNTS = ("new", "changed", "unchanged", "removed", "invalid")


LIGHTS = ("red", "amber", "green", "grey")


STORED = ("sum", "avg", "last")  # KPIs that hold loaded values (ratio/formula are computed)


LEVEL_ICON = {"error": "✖", "warning": "▲", "info": "ℹ"}


_BADGE = {"green": "green", "amber": "orange", "red": "red", "grey": "gray"}


def digest(uploads: list[tuple[str, bytes]]) -> str:
    """The uploads' identity: names and contents, in any order."""
    h = hashlib.sha256()
    for name, data in sorted(uploads):
        h.update(name.encode() + b"\0" + hashlib.sha256(data).digest())
    return h.hexdigest()


def kpi_text(cat: Catalog, kpi_id: int, lang: str) -> str:
    k = cat.kpis.get(int(kpi_id))
    return f"{k.code} · {k.name(lang)}" if k else f"#{kpi_id}"


def unit_text(cat: Catalog, unit_id: int, lang: str) -> str:
    u = cat.units.get(int(unit_id))
    return f"{u.code} · {u.name(lang)}" if u else f"#{unit_id}"


def _month(value: object) -> str:
    return pd.Timestamp(value).strftime("%Y-%m")


def _value(cat: Catalog, kpi_id: int, value: object, lang: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    kpi = cat.kpis.get(int(kpi_id))
    if kpi is None:
        return f"{float(value):,g}"
    return i18n.format_value(float(value), kpi, lang, compact=False)


def in_order(findings: list[Finding]) -> list[Finding]:
    """Errors first, then by file, sheet, row and column: the report's order."""
    return sorted(
        findings,
        key=lambda f: (SEVERITIES.index(f.severity), f.file, f.sheet, f.row or 0, f.column or ""),
    )


def said(text: Message | str | None, lang: str) -> str:
    """A finding's message, hint, file or column in `lang`: a coded message or a place
    (kpi_core.ingest.places) rendered from the catalogs; a file's own names as they are."""
    if isinstance(text, Message):
        return text.render(lang)
    if isinstance(text, places.Place):
        return places.text(text, lang)
    return text or ""


# Keys built below as "up_level_…", written out so that extraction finds them.
_UP_LEVEL_KEYS = (N_("up_level_error"), N_("up_level_info"), N_("up_level_warning"))


def findings_frame(findings: list[Finding], lang: str) -> pd.DataFrame:
    """Problems in the report's order (`in_order`); the core's English in `lang`."""
    rows = in_order(findings)

    def t(key: str) -> str:
        return i18n.t(key, lang)

    return pd.DataFrame(
        {
            t("up_col_severity"): [
                f"{LEVEL_ICON[f.severity]} {t('up_level_' + f.severity)}" for f in rows
            ],
            # A pull's findings name their source ("source 'ERP'"), a file's its file name.
            t("up_col_file"): [said(f.file, lang) for f in rows],
            t("up_col_sheet"): [f.sheet for f in rows],
            t("up_col_row"): pd.array([f.row for f in rows], dtype="Int64"),
            t("up_col_column"): [said(f.column, lang) for f in rows],
            t("up_col_message"): [said(f.message, lang) for f in rows],
            t("up_col_hint"): [said(f.hint, lang) for f in rows],
        }
    )


# Keys built below as "up_change_…", written out so that extraction finds them.
_UP_CHANGE_KEYS = (
    N_("up_change_changed"),
    N_("up_change_new"),
    N_("up_change_removed"),
    N_("up_change_unchanged"),
)


def diff_frame(it: intake.Intake, cat: Catalog, lang: str, changes) -> pd.DataFrame:
    """What the upload changes, by change type, KPI, unit and month; values formatted."""
    d = it.diff[it.diff["change"].isin(list(changes))]
    d = d.assign(
        _order=d["change"].map(CHANGES.index),
        _kpi=[cat.kpis[k].code if k in cat.kpis else "" for k in d["kpi_id"]],
        _unit=[cat.units[u].code if u in cat.units else "" for u in d["unit_id"]],
    ).sort_values(["_order", "_kpi", "_unit", "period"], kind="stable")

    def t(key: str) -> str:
        return i18n.t(key, lang)

    return pd.DataFrame(
        {
            t("up_col_kpi"): [kpi_text(cat, k, lang) for k in d["kpi_id"]],
            t("up_col_unit"): [unit_text(cat, u, lang) for u in d["unit_id"]],
            t("up_col_period"): [_month(p) for p in d["period"]],
            t("up_col_old"): [
                _value(cat, k, v, lang) for k, v in zip(d["kpi_id"], d["old"], strict=True)
            ],
            t("up_col_new"): [
                _value(cat, k, v, lang) for k, v in zip(d["kpi_id"], d["new"], strict=True)
            ],
            t("up_col_change"): [t("up_change_" + c) for c in d["change"]],
        }
    )


def effects_frame(it: intake.Intake, cat: Catalog, lang: str) -> pd.DataFrame:
    e = it.effects.sort_values(["after", "kpi_id", "unit_id", "period"], kind="stable")
    e = e.iloc[sorted(range(len(e)), key=lambda i: LIGHTS.index(e["after"].iloc[i]))]

    def t(key: str) -> str:
        return i18n.t(key, lang)

    return pd.DataFrame(
        {
            t("up_col_kpi"): [kpi_text(cat, k, lang) for k in e["kpi_id"]],
            t("up_col_unit"): [unit_text(cat, u, lang) for u in e["unit_id"]],
            t("up_col_period"): [_month(p) for p in e["period"]],
            t("up_col_light_before"): [i18n.status_label(s, lang) for s in e["before"]],
            t("up_col_light_after"): [i18n.status_label(s, lang) for s in e["after"]],
        }
    )


# Keys built below as "up_light_…", written out so that extraction finds them.
_UP_LIGHT_KEYS = (
    N_("up_light_amber"),
    N_("up_light_green"),
    N_("up_light_grey"),
    N_("up_light_red"),
)


def turns_text(turns: dict[str, int], lang: str) -> str:
    """'3 turn red, 2 turn green' as coloured badges (shape and word too, not colour alone)."""
    parts = [
        f":{_BADGE[light]}-badge[{i18n.STATUS_ICON[light]} "
        f"{i18n.t('up_turns', lang, n=turns[light], light=i18n.t('up_light_' + light, lang))}]"
        for light in LIGHTS
        if turns.get(light)
    ]
    return " ".join(parts)


# Keys built below as "up_kind_…" / "up_status_…" (the Detail page's batches too), written out
# so that extraction finds them.
_HISTORY_KEYS = (
    N_("up_kind_pull"), N_("up_kind_upload"), N_("up_kind_workbook"),
    N_("up_status_committed"), N_("up_status_rolled_back"),
)  # fmt: skip


def history_frame(df: pd.DataFrame, lang: str) -> pd.DataFrame:
    def t(key: str) -> str:
        return i18n.t(key, lang)

    def known(prefix: str, value: object) -> str:
        key = f"{prefix}{value}"
        return t(key) if i18n.known(key) else str(value)

    def summary(text: object) -> str | None:
        if not isinstance(text, str) or not text:
            return None
        c = json.loads(text)
        return t("up_summary").format(
            new=c.get("new", 0), changed=c.get("changed", 0), removed=c.get("removed", 0)
        )

    def plain(v: object) -> str | None:
        empty = v is None or (isinstance(v, float) and math.isnan(v)) or v == ""
        return None if empty else str(v)

    return pd.DataFrame(
        {
            t("up_col_batch"): df["id"].astype(int),
            t("up_col_when"): [
                pd.Timestamp(w).strftime("%Y-%m-%d %H:%M") for w in df["created_at"]
            ],
            t("up_col_who"): [plain(v) for v in df["created_by"]],
            t("up_col_kind"): [known("up_kind_", k) for k in df["kind"]],
            t("up_col_source"): [plain(v) for v in df["source_name"]],
            t("up_col_files"): [(plain(v) or "").replace("\n", ", ") or None for v in df["files"]],
            t("up_col_months"): [plain(v) for v in df["months"]],
            t("up_col_rows"): df["rows"].astype(int),
            t("up_col_summary"): [summary(s) for s in df["summary"]],
            t("up_col_status"): [known("up_status_", s) for s in df["status"]],
        }
    )


def month_options(latest: date | None, today: date, back: int = 36) -> tuple[list[date], date]:
    """Months to pick, newest first, and the default: the month after the latest loaded one
    (the next to fill in), but never after the current month."""
    current = today.replace(day=1)
    default = _add_months(latest, 1) if latest else _add_months(current, -1)
    default = min(default, current)
    top = max(current, default)
    return [_add_months(top, -i) for i in range(back)], default


def _add_months(m: date, n: int) -> date:
    k = m.year * 12 + m.month - 1 + n
    return date(k // 12, k % 12 + 1, 1)


# The measures editor's columns: a measure, its column or expression, and one filter.
MEASURE_COLUMNS = ("kpi", "agg", "column", "expression",
                   "filter_column", "filter_op", "filter_value")  # fmt: skip


def measures_frame(p: profile.Profile | None) -> pd.DataFrame:
    """The editor's rows: a measure's column, or its expression of columns without the '='."""
    rows = []
    for m in p.measures if p else []:
        f = m.filters[0] if m.filters else None
        column, expression = m.column, None
        if m.is_expression:
            column, expression = None, m.column.lstrip()[1:].strip()
        rows.append([m.kpi, m.agg, column, expression, f and f.column, f and f.op, f and f.value])
    if not rows:
        rows = [[None, "sum", None, None, None, None, None]]
    return pd.DataFrame(rows, columns=list(MEASURE_COLUMNS), dtype=object)


def measures_from(frame: pd.DataFrame) -> list[profile.Measure]:
    """Measures from the editor's rows; blank rows are skipped, one optional filter each. An
    expression ([单价] * [数量]) wins over a column."""

    def text(v: object) -> str | None:
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return None
        return str(v).strip() or None

    out = []
    for r in frame.to_dict("records"):
        kpi, agg, column = text(r.get("kpi")), text(r.get("agg")), text(r.get("column"))
        expression = text(r.get("expression"))
        if expression:
            column = "=" + expression.lstrip("=").strip()
        if not kpi and not column:
            continue
        fcol, fop, fval = (text(r.get(k)) for k in ("filter_column", "filter_op", "filter_value"))
        filters = [profile.Filter(fcol, fop or "=", fval or "")] if fcol else []
        # An empty choice stays empty: the profile's problems name the row, nothing is guessed.
        out.append(profile.Measure(kpi or "", agg or "", column, filters))
    return out


def records_frame(records, lang: str) -> pd.DataFrame:
    def t(key: str) -> str:
        return i18n.t(key, lang)

    return pd.DataFrame(
        {
            t("up_col_period"): [
                p.strftime("%Y-%m") if isinstance(p, date) else str(p) for p in records.period
            ],
            t("up_col_unit"): [str(u) for u in records.unit],
            t("up_col_kpi"): [str(k) for k in records.kpi],
            t("value"): [float(v) for v in records.value],
            t("up_col_column"): [said(v, lang) for v in records.value_at],
        }
    )


# Names an export gives the unit column that the layout finder does not take for a header word.
_GUESS_MORE = {"unit": ("region", "branch", "store", "team", "大区", "分公司", "门店", "片区")}


def guess_column(columns: list[str], field: str) -> int:
    """The column most likely to hold `field`: a name in either language, else the first."""
    aliases = [norm(a) for a in (*FIELDS[field], *_GUESS_MORE.get(field, ()))]
    for alias in aliases:
        for i, c in enumerate(columns):
            if norm(c) == alias:
                return i
    for i, c in enumerate(columns):
        if any(a and a in norm(c) for a in aliases):
            return i
    return 0


def shown_cells(df: pd.DataFrame) -> pd.DataFrame:
    """Cells as text, so a column mixing numbers, dates and words displays as it reads."""

    def text(v: object) -> str:
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return ""
        if isinstance(v, float) and v.is_integer():
            return str(int(v))
        return str(v)

    return df.map(text)
