"""The Upload page's sections (DESIGN.md §6): load the month's files — check, preview, load —,
history and roll-back, the entry template, mapping profiles, and closing months.

The work is in `kpi_core.ingest`; this module draws it. Nothing is written before the analyst
clicks, and no error reaches the screen as a traceback.

The Sources page (`kpi_core.ui.sources`) shows a database pull with the same pieces: `report`,
`preview` and `commit_panel` for an `Intake` of either kind, `history_section`, and the profile
editor's `mapping_fields` (date column, unit, measures).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date

import pandas as pd
import streamlit as st

from kpi_core import clock, completeness, i18n
from kpi_core.access import can
from kpi_core.board import data_range
from kpi_core.catalog import SCORECARD, Catalog
from kpi_core.errors import KpiError, WarehouseBusyError
from kpi_core.ingest import files, intake, profile, template
from kpi_core.ingest.layout import FIELDS, Finding
from kpi_core.ingest.names import Names, norm
from kpi_core.problem_text import translate
from kpi_core.ui import PageContext
from kpi_core.ui.definition_files import download, opened
from kpi_core.ui.widgets import error_text, md, parts_text

log = logging.getLogger(__name__)

TYPES = ("xlsx", "xlsm", "xls", "csv", "parquet")
SEVERITIES = ("error", "warning", "info")
CHANGES = ("new", "changed", "removed", "unchanged")
COUNTS = ("new", "changed", "unchanged", "removed", "invalid")
LIGHTS = ("red", "amber", "green", "grey")
STORED = ("sum", "avg", "last")  # KPIs that hold loaded values (ratio/formula are computed)

_LEVEL_ICON = {"error": "✖", "warning": "▲", "info": "ℹ"}
_BADGE = {"green": "green", "amber": "orange", "red": "red", "grey": "gray"}
_STEPS = {
    "Checking against the KPI library": "up_step_checking",
    "Comparing with the warehouse": "up_step_comparing",
    "Aggregating by month and unit": "up_step_aggregating",
    "Ready": "up_step_ready",
}
# Previews held in the session, one per page; a roll-back or a closed month makes them stale.
HELD = ("up_intake", "src_intake")


@contextmanager
def safe(ctx: PageContext, unexpected: str = "up_unexpected") -> Iterator[None]:
    """Like `guard`, with the core's refusals in the page's language, and a bug in reading a
    user's file or database still a message (`unexpected`, an i18n key), not a traceback."""
    try:
        yield
    except WarehouseBusyError:
        st.warning(ctx.t("warehouse_busy"))
    except KpiError as exc:
        st.error(error_text(ctx, exc))
    except Exception as exc:
        log.exception("page section")
        st.error(ctx.t(unexpected, error=f"{type(exc).__name__}: {exc}"))


def say(ctx: PageContext, it: intake.Intake, key: str, **values: object) -> str:
    """A string of the report in the words of the intake's kind: "the file" for an upload,
    "the pull" for a database source (a `KEY_pull` string, where one is needed)."""
    pulled = f"{key}_pull"
    return ctx.t(pulled if it.kind == "pull" and i18n.known(pulled) else key, **values)


# --- frames shown on the page (plain pandas; no streamlit) ------------------------------------


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


def findings_frame(findings: list[Finding], lang: str) -> pd.DataFrame:
    """Problems in the report's order (`in_order`); the core's English in `lang`."""
    rows = in_order(findings)

    def t(key: str) -> str:
        return i18n.t(key, lang)

    return pd.DataFrame(
        {
            t("up_col_severity"): [
                f"{_LEVEL_ICON[f.severity]} {t('up_level_' + f.severity)}" for f in rows
            ],
            # A pull's findings name their source ("source 'ERP'"), a file's its file name.
            t("up_col_file"): [translate(f.file, lang) for f in rows],
            t("up_col_sheet"): [f.sheet for f in rows],
            t("up_col_row"): pd.array([f.row for f in rows], dtype="Int64"),
            t("up_col_column"): [translate(f.column or "", lang) for f in rows],
            t("up_col_message"): [translate(f.message, lang) for f in rows],
            t("up_col_hint"): [translate(f.hint, lang) for f in rows],
        }
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


def turns_text(turns: dict[str, int], lang: str) -> str:
    """'3 turn red, 2 turn green' as coloured badges (shape and word too, not colour alone)."""
    parts = [
        f":{_BADGE[light]}-badge[{i18n.STATUS_ICON[light]} "
        f"{i18n.t('up_turns', lang, n=turns[light], light=i18n.t('up_light_' + light, lang))}]"
        for light in LIGHTS
        if turns.get(light)
    ]
    return " ".join(parts)


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
            t("up_col_column"): [translate(str(v), lang) for v in records.value_at],
        }
    )


# Names an export gives the unit column that the layout finder does not take for a header word.
_GUESS_MORE = {"unit": ("region", "branch", "store", "team", "大区", "分公司", "门店", "片区")}


def _guess(columns: list[str], field: str) -> int:
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


# --- 1-4: upload, validation report, preview, load -------------------------------------------


def load_section(ctx: PageContext) -> list[tuple[str, bytes]]:
    """The uploader and everything that follows from it; returns the uploaded files."""
    names = profile.names(ctx.wh)
    wanted = st.session_state.pop("up_profile_next", None)
    if wanted in names:
        st.session_state.up_profile = wanted
    if st.session_state.get("up_profile") not in [None, *names]:
        st.session_state.up_profile = None
    left, right = st.columns([3, 2], gap="large")
    with left:
        uploaded = st.file_uploader(
            ctx.t("up_files"),
            type=list(TYPES),
            accept_multiple_files=True,
            key=f"up_files_{st.session_state.get('up_generation', 0)}",
            help=ctx.t("up_files_help"),
            # The core's own limit (KPI_MAX_UPLOAD_MB), so the drop zone says the true one.
            max_upload_size=max(1, math.ceil(files.Limits.configured().max_bytes / 2**20)),
        )
        if ctx.lang == "zh":
            # Streamlit 1.67 draws the drop zone's words in English and takes no text for them.
            st.caption(
                ctx.t(
                    "up_files_zone",
                    mb=max(1, math.ceil(files.Limits.configured().max_bytes / 2**20)),
                )
            )
    with right:
        chosen = st.selectbox(
            ctx.t("up_profile"),
            [None, *names],
            format_func=lambda n: ctx.t("up_profile_auto") if n is None else n,
            key="up_profile",
            help=ctx.t("up_profile_help"),
        )
        default = chosen or ", ".join(sorted(f.name for f in uploaded or [])) or "—"
        source = st.text_input(
            ctx.t("up_source"),
            key="up_source",
            placeholder=ctx.t("up_source_placeholder", default=default),
            help=ctx.t("up_source_help"),
        )
    if not uploaded:
        st.session_state.pop("up_intake", None)
        done = st.session_state.get("up_done")
        if done:
            getattr(st, done[0])(done[1])
        else:
            st.info(ctx.t("up_drop_hint"))
        return []
    st.session_state.pop("up_done", None)
    uploads = [(f.name, f.getvalue()) for f in uploaded]
    # The analyst's answers (a KPI per column) hold for these files only.
    files_digest = digest(uploads)
    answers = st.session_state.get("up_answers")
    if answers is None or answers[0] != files_digest:
        answers = st.session_state.up_answers = (files_digest, {})
    key = (files_digest, chosen or "", (source or "").strip(), tuple(sorted(answers[1].items())))
    held = st.session_state.get("up_intake")
    if held is None or held[0] != key:
        held = (
            key,
            *_prepare(ctx, uploads, chosen, (source or "").strip() or None, dict(answers[1])),
        )
        st.session_state.up_intake = held
    else:
        _, it, error, seconds = held
        st.status(
            ctx.t("up_check_failed")
            if error
            else ctx.t("up_checked", n=len(uploads), seconds=seconds),
            state="error" if error else "complete",
        )
    _, it, error, _ = held
    if error:
        st.error(error_text(ctx, error))  # held as the core said it; shown in ctx.lang
        return uploads
    st.markdown(ctx.t("up_source_is", source=md(it.source)))
    # Widgets of this intake have keys of their own: another file or profile starts afresh.
    tag = hashlib.sha256(repr(key).encode()).hexdigest()[:12]
    report(ctx, it, tag, hint=None if chosen else ctx.t("up_nothing_found_hint"))
    bindings_section(ctx, it, answers=answers[1])
    preview(ctx, it, tag)
    done = commit_panel(ctx, it, tag, key="up_commit")
    if done is not None:
        st.session_state.up_done = done_message(ctx, it, done)
        st.session_state.pop("up_intake", None)
        st.session_state.up_rb_newest = True  # the roll-back picker offers the new batch
        # A new uploader key empties it: the file is loaded, the page is ready for the next one.
        st.session_state.up_generation = st.session_state.get("up_generation", 0) + 1
        st.rerun()
    return uploads


def _prepare(ctx: PageContext, uploads, mapping: str | None, source: str | None, choices=None):
    """Run the checks with a progress bar: (intake or None, error message or None, seconds)."""
    started = time.monotonic()
    n = len(uploads)
    with st.status(ctx.t("up_checking", n=n), expanded=True) as status:
        bar = st.progress(0.0, text=ctx.t("up_checking", n=n))

        def progress(fraction: float, text: str) -> None:
            bar.progress(min(max(float(fraction), 0.0), 1.0), text=step_text(ctx, text))

        error = None
        it = None
        try:
            it = intake.prepare(
                ctx.wh,
                uploads,
                ctx.actor,
                mapping=mapping,
                source=source,
                progress=progress,
                choices=choices or None,
            )
        except WarehouseBusyError:
            error = ctx.t("warehouse_busy")
        except KpiError as exc:
            error = str(exc)
        except Exception as exc:
            log.exception("preparing an upload")
            error = ctx.t("up_unexpected", error=f"{type(exc).__name__}: {exc}")
        seconds = time.monotonic() - started
        if error:
            status.update(label=ctx.t("up_check_failed"), state="error", expanded=False)
        else:
            status.update(
                label=ctx.t("up_checked", n=n, seconds=seconds), state="complete", expanded=False
            )
    return it, error, seconds


def kept(name: str, key: object, build):
    """One derived value in the session, rebuilt when its key changes."""
    held = st.session_state.get(name)
    if held is None or held[0] != key:
        held = (key, build())
        st.session_state[name] = held
    return held[1]


def step_text(ctx: PageContext, text: str) -> str:
    """The core's progress texts (an upload's or a pull's) in the page's language."""
    if text.startswith("Reading "):
        return ctx.t("up_step_reading", name=text.removeprefix("Reading "))
    if text.startswith("Querying "):
        return ctx.t("up_step_querying", url=text.removeprefix("Querying "))
    if m := re.fullmatch(r"([\d,]+) rows read", text):
        return ctx.t("up_step_rows", n=m[1])
    return ctx.t(_STEPS[text]) if text in _STEPS else text


def report(ctx: PageContext, it: intake.Intake, tag: str, *, hint: str | None = None) -> None:
    """The validation report: counts, a verdict, and the problems by place, filterable by
    severity. `hint` is said when nothing loadable was found."""
    st.subheader(ctx.t("up_report"))
    counts = it.counts
    for col, key in zip(st.columns(len(COUNTS)), COUNTS, strict=True):
        col.metric(ctx.t(f"up_count_{key}"), f"{counts[key]:,}", border=True)
    errors, warnings = len(it.errors), len(it.warnings)
    if errors:
        st.error(say(ctx, it, "up_has_errors", errors=errors, warnings=warnings))
    elif warnings:
        st.warning(ctx.t("up_has_warnings", warnings=warnings))
    else:
        st.success(ctx.t("up_no_problems"))
    if not len(it.rows) and hint:
        st.info(hint)
    if not it.findings:
        return
    n = {s: sum(f.severity == s for f in it.findings) for s in SEVERITIES}
    present = [s for s in SEVERITIES if n[s]]
    shown = st.pills(
        ctx.t("up_severity_filter"),
        present,
        selection_mode="multi",
        default=present,
        format_func=lambda s: f"{_LEVEL_ICON[s]} {ctx.t('up_sev_' + s)} ({n[s]:,})",
        key=f"up_sev_{tag}",
    )
    chosen = in_order([f for f in it.findings if f.severity in (shown or [])])
    st.caption(ctx.t("up_pick_finding"))
    picked = st.dataframe(
        findings_frame(chosen, ctx.lang),
        hide_index=True,
        placeholder="—",
        width="stretch",
        on_select="rerun",
        selection_mode="single-row",
        key=f"up_findings_{tag}",
        column_config={
            ctx.t("up_col_severity"): st.column_config.TextColumn(width=80),
            # The problem is the long text to read; the file is named above the report too.
            ctx.t("up_col_file"): st.column_config.TextColumn(width=150),
            ctx.t("up_col_row"): st.column_config.NumberColumn(width=55),
            ctx.t("up_col_message"): st.column_config.TextColumn(width=420),
            ctx.t("up_col_hint"): st.column_config.TextColumn(width="large"),
        },
    )
    rows = picked.selection.rows if picked else []
    if chosen:
        # A grid cell never wraps: the picked problem (else the first) is told in full below it.
        finding_details(ctx, chosen[rows[0] if rows and rows[0] < len(chosen) else 0])


def finding_details(ctx: PageContext, f: Finding) -> None:
    """One problem in full, wrapped: where it is, what is wrong and what to do."""
    lang = ctx.lang
    place = [translate(f.file, lang), f.sheet]
    if f.row is not None:
        place.append(ctx.t("up_detail_row", row=f.row))
    if f.column:
        place.append(ctx.t("up_detail_column", column=translate(f.column, lang)))
    with st.container(border=True):
        st.markdown(
            f"**{_LEVEL_ICON[f.severity]} {ctx.t('up_level_' + f.severity)}** · "
            + " · ".join(md(p) for p in place if p)
        )
        colon = "：" if lang == "zh" else ": "
        st.markdown(f"**{ctx.t('up_col_message')}**{colon}{md(translate(f.message, lang))}")
        if f.hint:
            st.markdown(f"**{ctx.t('up_col_hint')}**{colon}{md(translate(f.hint, lang))}")


def bindings_frame(it: intake.Intake, cat: Catalog, lang: str) -> pd.DataFrame:
    """Every binding of a KPI to a column or KPI text, problems first."""
    rows = sorted(it.bindings, key=lambda b: b.problem == "")

    def t(key: str) -> str:
        return i18n.t(key, lang)

    def kpi(b) -> str:
        k = cat.kpi_by_code.get(b.kpi)
        return f"{k.code} · {k.name(lang)}" if k else "—"

    def place(b) -> str:
        sheet = f" / {b.sheet}" if b.sheet and b.sheet != b.file else ""
        return f"{b.file}{sheet} · {translate(b.column, lang)}"

    return pd.DataFrame(
        {
            t("up_bind_col_place"): [place(b) for b in rows],
            t("up_bind_col_text"): [b.text for b in rows],
            t("up_bind_col_kpi"): [kpi(b) for b in rows],
            t("up_bind_col_how"): [t("up_bind_how_" + b.how) for b in rows],
            t("up_bind_col_units"): [i18n.join(list(b.units), lang) for b in rows],
            t("up_bind_col_values"): [b.values for b in rows],
            t("up_bind_col_status"): [t("up_bind_" + (b.problem or "ok")) for b in rows],
        }
    )


def bindings_section(ctx: PageContext, it: intake.Intake, answers: dict | None = None) -> None:
    """Which KPI each column feeds and how that was decided, before anything is loaded: no
    value goes in by a match the analyst did not see. With `answers` (the Upload page), a
    binding in question — a name several KPIs share, a KPI off the unit's tree, an unknown
    text — is answered by choosing its KPI; the files are then checked again."""
    if not it.bindings:
        return
    st.subheader(ctx.t("up_bindings"))
    st.caption(ctx.t("up_bindings_caption"))
    bad = sum(1 for b in it.bindings if b.problem)
    if bad:
        st.warning(ctx.t("up_bindings_problems", n=bad))
    st.dataframe(
        bindings_frame(it, ctx.cat, ctx.lang),
        hide_index=True,
        placeholder="—",
        width="stretch",
        column_config={
            ctx.t("up_bind_col_place"): st.column_config.TextColumn(width=260),
            ctx.t("up_bind_col_values"): st.column_config.NumberColumn(width=80),
            ctx.t("up_bind_col_status"): st.column_config.TextColumn(width="medium"),
        },
    )
    if answers is None:
        return
    asked = [b for b in it.bindings
             if b.problem in ("ambiguous", "not on tree", "unknown") or b.how == "analyst"]  # fmt: skip
    if not asked:
        return
    st.markdown(f"**{ctx.t('up_bind_ask')}**")
    for b in asked:
        options = _kpi_options(ctx.cat, b)
        wkey = "up_bind_" + hashlib.sha256(repr(b.key).encode()).hexdigest()[:12]
        current = answers.get(b.key)
        st.selectbox(
            ctx.t(
                "up_bind_choose", place=f"{b.sheet} · {translate(b.column, ctx.lang)}", text=b.text
            ),
            options,
            index=options.index(current) if current in options else None,
            format_func=lambda c: kpi_text(ctx.cat, ctx.cat.kpi_by_code[c].id, ctx.lang),
            placeholder=ctx.t("up_bind_placeholder"),
            key=wkey,
            on_change=_answer,
            args=(answers, b.key, wkey),
        )


def _answer(answers: dict, key: tuple, widget: str) -> None:
    code = st.session_state.get(widget)
    if code:
        answers[key] = code
    else:
        answers.pop(key, None)


def _kpi_options(cat: Catalog, b) -> list[str]:
    """The KPIs to choose from: those the text could mean, the units' own, then the rest."""
    first = [k.code for k in Names(cat).kpi_match(b.text).kpis]
    units = {cat.unit_by_code[u].id for u in b.units if u in cat.unit_by_code}
    own = [cat.kpis[e.child_kpi].code for e in sorted(cat.edges, key=lambda e: e.sort_order)
           if e.child_unit in units and e.child_kpi in cat.kpis]  # fmt: skip
    rest = sorted(k.code for k in cat.kpis.values() if k.aggregation != "formula")
    return list(dict.fromkeys([*first, *own, *rest]))


def preview(ctx: PageContext, it: intake.Intake, tag: str) -> None:
    """What loading would change (old → new, removed), and the status lights that change."""
    counts = it.counts
    present = [c for c in CHANGES if counts[c]]
    if not present:
        return
    st.subheader(ctx.t("up_preview"))
    if present == ["unchanged"]:
        st.info(ctx.t("up_no_changes"))
    shown = st.pills(
        ctx.t("up_change_filter"),
        present,
        selection_mode="multi",
        default=[c for c in present if c != "unchanged"],
        format_func=lambda c: f"{ctx.t('up_change_' + c)} ({counts[c]:,})",
        key=f"up_chg_{tag}",
    )
    if shown:
        # Formatting every value takes a while on a big upload; once per intake and language.
        full = kept(
            f"{it.kind}_diff_view",
            (tag, ctx.lang),
            lambda: diff_frame(it, ctx.cat, ctx.lang, CHANGES),
        )
        labels = {ctx.t("up_change_" + c) for c in shown}
        st.dataframe(
            full[full[ctx.t("up_col_change")].isin(labels)],
            hide_index=True,
            placeholder="—",
            width="stretch",
        )
    st.markdown(f"**{ctx.t('up_lights')}**")
    turns = it.turns()
    if not turns:
        st.caption(say(ctx, it, "up_turns_none"))
        return
    st.markdown(turns_text(turns, ctx.lang))
    st.dataframe(
        effects_frame(it, ctx.cat, ctx.lang), hide_index=True, placeholder="—", width="stretch"
    )


def commit_panel(
    ctx: PageContext, it: intake.Intake, tag: str, *, key: str
) -> intake.Committed | None:
    """The confirmation (when some values are invalid) and the button that loads the intake as
    one batch. What was committed once clicked and done; else None (a refusal is shown)."""
    st.subheader(ctx.t("up_commit"))
    valid = len(it.rows)
    accepted = True
    if not valid:
        st.warning(ctx.t("up_nothing_valid"))
    elif it.errors:
        accepted = st.checkbox(
            ctx.t("up_accept_invalid", valid=f"{valid:,}", invalid=f"{it.invalid:,}"),
            key=f"up_accept_{tag}",
        )
    clicked = st.button(
        ctx.t("up_commit_button"),
        type="primary",
        icon=":material/upload:",
        disabled=not valid or not accepted,
        key=key,
    )
    if valid and not accepted:
        st.caption(say(ctx, it, "up_commit_blocked"))
    if not clicked:
        return None
    with safe(ctx):
        return intake.commit(ctx.wh, it, ctx.actor, accept_invalid=bool(it.errors) and accepted)
    return None


def done_message(ctx: PageContext, it: intake.Intake, done: intake.Committed) -> tuple[str, str]:
    """What a commit did, as (st function name, text): a new batch, or nothing changed."""
    if done.batch_id is None:
        return "info", say(ctx, it, "up_already_loaded")
    counts = {k: f"{v:,}" for k, v in done.counts.items()}  # 99,513 as on the metrics above
    return "success", ctx.t("up_committed", batch=done.batch_id, **counts)


# --- 5: history and roll-back ----------------------------------------------------------------


def history_section(
    ctx: PageContext, *, prefix: str = "up", kinds: tuple[str, ...] | None = None
) -> None:
    """Batches, newest first, and rolling one back. `kinds` keeps batches of those kinds only
    (the Sources page shows pulls); `prefix` keeps each page's widgets apart."""
    with safe(ctx):
        done = st.session_state.pop(f"{prefix}_rb_done", None)
        if done:
            st.success(done)
        df = intake.history(ctx.wh, ctx.actor)
        if kinds is not None:
            df = df[df["kind"].isin(list(kinds))].reset_index(drop=True)
        if not len(df):
            st.info(ctx.t(f"{prefix}_no_history"))
            return
        # Fits a laptop screen: the columns add up to a little under the page's width.
        widths = {"batch": 40, "when": 115, "who": 60, "kind": 82, "source": 100, "files": 100,
                  "months": 75, "rows": 62, "summary": 170, "status": 66}  # fmt: skip
        st.dataframe(
            history_frame(df, ctx.lang),
            hide_index=True,
            placeholder="—",
            width="stretch",
            column_config={
                ctx.t(f"up_col_{k}"): st.column_config.Column(width=w) for k, w in widths.items()
            },
        )
        _rollback(ctx, df, prefix)


def _rollback(ctx: PageContext, df: pd.DataFrame, prefix: str) -> None:
    st.subheader(ctx.t("up_rollback"))
    st.caption(ctx.t("up_rollback_help"))
    committed = df[df["status"] == "committed"]
    if not len(committed):
        st.info(ctx.t("up_no_rollback"))
        return
    by_id = {int(r.id): r for r in committed.itertuples()}
    key, reason_key = f"{prefix}_rb_batch", f"{prefix}_rb_reason"
    # Set before the widgets are drawn, so what they show and what they return agree. After a
    # load, the new batch is offered; on a first visit, the newest. After a roll-back nothing is
    # selected and the reason is emptied: the next batch is not armed with the last one's reason.
    if st.session_state.pop(f"{prefix}_rb_newest", False) or key not in st.session_state:
        st.session_state[key] = next(iter(by_id))
    if st.session_state.pop(f"{prefix}_rb_clear", False) or st.session_state[key] not in by_id:
        st.session_state[key] = None
        st.session_state[reason_key] = ""

    def label(batch: int) -> str:
        r = by_id[batch]
        when = pd.Timestamp(r.created_at).strftime("%Y-%m-%d %H:%M")
        months = r.months if isinstance(r.months, str) and r.months else ""
        return " · ".join(p for p in (f"#{batch}", str(r.source_name or ""), months, when) if p)

    left, right = st.columns([2, 3])
    batch = left.selectbox(
        ctx.t("up_rollback_batch"),
        list(by_id),
        format_func=label,
        key=key,
        placeholder=ctx.t("up_rollback_pick"),
    )
    reason = right.text_input(
        ctx.t("up_rollback_reason"),
        key=reason_key,
        placeholder=ctx.t("up_rollback_reason_placeholder"),
    )
    pending = f"{prefix}_rb_pending"
    if batch is None:
        st.session_state.pop(pending, None)
        st.button(
            ctx.t("up_rollback_none"), icon=":material/undo:", key=f"{prefix}_rb_ask", disabled=True
        )
        return
    if st.session_state.get(pending) != batch:
        if st.button(
            ctx.t("up_rollback_button", batch=batch),
            icon=":material/undo:",
            key=f"{prefix}_rb_ask",
        ):
            st.session_state[pending] = batch
            st.rerun()
        return
    r = by_id[batch]
    st.warning(
        ctx.t("up_rollback_confirm", batch=batch, source=r.source_name or "—", rows=int(r.rows))
    )
    with st.container(horizontal=True):
        yes = st.button(ctx.t("up_rollback_yes"), type="primary", key=f"{prefix}_rb_yes")
        no = st.button(ctx.t("up_cancel"), key=f"{prefix}_rb_no")
    if no:
        st.session_state.pop(pending, None)
        st.rerun()
    if yes:
        st.session_state.pop(pending, None)
        with safe(ctx):
            got = intake.rollback(ctx.wh, int(batch), ctx.actor, (reason or "").strip())
            for held in HELD:  # a pending preview has moved
                st.session_state.pop(held, None)
            st.session_state[f"{prefix}_rb_done"] = ctx.t("up_rolled_back", batch=batch, **got)
            st.session_state[f"{prefix}_rb_clear"] = True
            st.rerun()


# --- 6: the entry template -------------------------------------------------------------------


def template_section(ctx: PageContext) -> None:
    st.caption(ctx.t("up_template_help"))
    with safe(ctx):
        units = [u for r in ctx.cat.scope_roots(ctx.actor.scope) for u in ctx.cat.descendants(r)]
        if not units:
            return
        span = data_range(ctx.wh, ctx.actor.scope, ctx.cat)
        months, default = month_options(span[1] if span else None, clock.today())
        root_depth = min(len(ctx.cat.ancestors(u)) for u in units)
        left, right = st.columns(2)
        unit_id = left.selectbox(
            ctx.t("unit"),
            units,
            format_func=lambda u: (
                "\u2003" * (len(ctx.cat.ancestors(u)) - root_depth)
                + f"{ctx.cat.units[u].code} · {ctx.cat.units[u].name(ctx.lang)}"
            ),
            key="up_tpl_unit",
        )
        month = right.selectbox(
            ctx.t("up_template_month"),
            months,
            index=months.index(default),
            format_func=lambda m: i18n.period_label(f"{m:%Y-%m}", ctx.lang),
            key="up_tpl_month",
        )
        unit = ctx.cat.units[unit_id]
        shown_month = i18n.period_label(f"{month:%Y-%m}", ctx.lang)
        rows = template.template_rows(ctx.wh, ctx.cat, ctx.actor.scope, unit.code, month)
        if not rows:
            st.info(ctx.t("up_template_empty", unit=unit.name(ctx.lang), month=shown_month))
            return
        cat, scope, lang = ctx.cat, ctx.actor.scope, ctx.lang
        wh = ctx.wh
        st.download_button(
            ctx.t("up_template_download"),
            # Built when clicked, not on every run of the page.
            data=lambda: template.build_template(wh, cat, scope, unit.code, month, lang),
            file_name=f"kpi_template_{unit.code}_{month:%Y-%m}.xlsx",
            mime="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            icon=":material/download:",
            type="primary",
            on_click="ignore",
            key="up_tpl_download",
        )
        st.caption(
            ctx.t("up_template_rows", n=len(rows), unit=unit.name(ctx.lang), month=shown_month)
        )
        st.dataframe(
            pd.DataFrame(
                {
                    ctx.t("up_col_unit"): [f"{r.unit.code} · {r.unit.name(lang)}" for r in rows],
                    ctx.t("up_col_kpi"): [f"{r.kpi.code} · {r.kpi.name(lang)}" for r in rows],
                    ctx.t("target"): [i18n.format_value(r.target, r.kpi, lang) for r in rows],
                }
            ),
            hide_index=True,
            placeholder="—",
            width="stretch",
        )


# --- 7: mapping profiles ---------------------------------------------------------------------


def profiles_section(ctx: PageContext, uploads: list[tuple[str, bytes]]) -> None:
    st.caption(ctx.t("up_pf_intro"))
    done = st.session_state.pop("up_pf_done", None)
    if done:
        st.success(done)
    with safe(ctx):
        _profile_editor(ctx, uploads)


def _tables(name: str, data: bytes) -> list[files.Table]:
    """The sample file's sheets, read once per file."""
    return kept("up_pf_tables", digest([(name, data)]), lambda: files.read_file(name, data))


def _profile_editor(ctx: PageContext, uploads: list[tuple[str, bytes]]) -> None:
    names = profile.names(ctx.wh)
    start = st.selectbox(
        ctx.t("up_pf_start"),
        [None, *names],
        format_func=lambda n: ctx.t("up_pf_new") if n is None else n,
        key="up_pf_start",
    )
    base = profile.load(ctx.wh, start) if start else None
    if base:
        download(ctx, base, "up_pf_dl_saved", ctx.t("def_download_saved"))
    # A TOML file (profile export, or downloaded here) opens in the editor in place of `start`.
    loaded, toml_tag = opened(ctx, "profile", "up_pf_toml")
    if loaded is not None:
        base = loaded
        if st.button(ctx.t("def_save_file"), icon=":material/save:", key="up_pf_save_toml"):
            profile.save(ctx.wh, loaded, ctx.actor)
            st.session_state.up_pf_done = ctx.t("up_pf_saved", name=loaded.name)
            st.session_state.up_profile_next = loaded.name
            st.rerun()
    if not uploads:
        st.info(ctx.t("up_pf_need_file"))
        return
    by_name = dict(uploads)
    sample = st.selectbox(ctx.t("up_pf_sample"), list(by_name), key="up_pf_file")
    tables = _tables(sample, by_name[sample])
    file_id = digest([(sample, by_name[sample])])
    # Widgets are keyed by profile (or opened file) and sample file, so choosing another one
    # starts from its settings.
    p = "up_pf_" + hashlib.sha256(f"{start}|{toml_tag}|{file_id}".encode()).hexdigest()[:10] + "_"

    labels = [t.label for t in tables]
    sheet_at = 0
    if base and base.sheet:
        sheet_at = next((i for i, t in enumerate(tables) if norm(t.sheet) == norm(base.sheet)), 0)
    left, right = st.columns([3, 1])
    label = left.selectbox(ctx.t("up_pf_sheet"), labels, index=sheet_at, key=p + "sheet")
    table = tables[labels.index(label)]
    height = max(len(table.rows), 1)
    header_row = int(
        right.number_input(
            ctx.t("up_pf_header_row"),
            min_value=1,
            max_value=height,
            value=min(base.header_row if base else 1, height),
            step=1,
            key=p + "header",
        )
    )
    # Every tab runs on every click: what costs time on a big export is kept between runs.
    frame = kept(
        "up_pf_frame", (file_id, label, header_row), lambda: profile.frame(table, header_row)
    )
    st.caption(ctx.t("up_pf_first_rows"))
    st.dataframe(shown_cells(frame.head(8)), width="stretch")
    columns = [str(c) for c in frame.columns]
    if not columns:
        return

    def values_of(unit_column: str) -> list[str]:
        return kept(
            "up_pf_values",
            (file_id, label, header_row, unit_column),
            lambda: sorted({str(v).strip() for v in frame[unit_column] if v is not None} - {""}),
        )

    mapped = mapping_fields(ctx, columns, base, p, values_of)
    name = st.text_input(ctx.t("up_pf_name"), value=base.name if base else "", key=p + "name")
    candidate = profile.Profile(
        name=(name or "").strip(), sheet=table.sheet or None, header_row=header_row, **mapped
    )
    problems = candidate.problems(columns)  # a column an expression names must be in the sheet
    if problems:
        st.info(
            "\n".join(
                [ctx.t("up_pf_problems"), *(f"- {md(translate(q, ctx.lang))}" for q in problems)]
            )
        )
    else:
        _try_profile(ctx, candidate, tables, file_id)
    with st.container(horizontal=True):
        save = st.button(
            ctx.t("up_pf_save"),
            type="primary",
            icon=":material/save:",
            disabled=bool(problems),
            key=p + "save",
        )
        if not problems:
            download(ctx, candidate, p + "dl", ctx.t("def_download_edited"))
    if save:
        profile.save(ctx.wh, candidate, ctx.actor)
        st.session_state.up_pf_done = ctx.t("up_pf_saved", name=candidate.name)
        st.session_state.up_profile_next = candidate.name
        st.rerun()


def mapping_fields(
    ctx: PageContext,
    columns: list[str],
    base: profile.Profile | None,
    p: str,
    values_of,
    *,
    growable: bool = False,
) -> dict:
    """The profile editor's pieces the Upload and Sources pages share: the date column (its
    month is the period), the unit (a column with a map of its values, or one unit), and the
    measures. Returns the profile's fields for those. `values_of(column)` gives the unit
    column's values to map; `growable` lets the analyst add values the sample did not show
    (a database sample is a few rows, not the whole table)."""

    def at(name: str | None, field: str) -> int:
        if name and name in columns:
            return columns.index(name)
        return _guess(columns, field)

    left, right = st.columns(2, gap="large")
    date_column = left.selectbox(
        ctx.t("up_pf_date_column"),
        columns,
        index=at(base and base.date_column, "period"),
        key=p + "date",
    )
    date_format = _date_format(ctx, left, base, p)
    codes = [
        ctx.cat.units[u].code
        for r in ctx.cat.scope_roots(ctx.actor.scope)
        for u in ctx.cat.descendants(r)
    ]

    def unit_name(code: str) -> str:
        u = ctx.cat.unit_by_code.get(code)
        return f"{code} · {u.name(ctx.lang)}" if u else code

    mode = right.radio(
        ctx.t("up_pf_unit_mode"),
        ["column", "fixed"],
        index=1 if base and not base.unit_column else 0,
        format_func=lambda m: ctx.t(
            "up_pf_unit_by_column"
            if m == "column"
            else "up_pf_unit_fixed_rows"
            if growable
            else "up_pf_unit_fixed"
        ),
        horizontal=True,
        key=p + "umode",
    )
    unit_column, unit_map, fixed = None, {}, None
    if mode == "column":
        unit_column = right.selectbox(
            ctx.t("up_pf_unit_column"),
            columns,
            index=at(base and base.unit_column, "unit"),
            key=p + "ucol",
        )
        values = values_of(unit_column)[:500]
        if growable and base:  # values mapped before stay, though the sample lacks them
            have = {norm(v) for v in values}
            values += [k for k in base.unit_map if norm(k) not in have]
        unit_map = _unit_map(ctx, values, unit_column, codes, unit_name, base, p, growable)
    else:
        fixed = right.selectbox(
            ctx.t("up_pf_unit"),
            codes,
            index=codes.index(base.unit) if base and base.unit in codes else 0,
            format_func=unit_name,
            key=p + "unit",
        )
    measures = measures_editor(ctx, columns, base, p)
    return {
        "date_column": date_column,
        "date_format": date_format,
        "unit_column": unit_column,
        "unit_map": unit_map,
        "unit": fixed,
        "measures": measures,
    }


DATE_FORMATS = ("", "dmy", "mdy", "ymd", "%d/%m/%y", "%d/%m/%Y", "%m/%d/%Y", "%d.%m.%Y")


def _date_format(ctx: PageContext, where, base: profile.Profile | None, p: str) -> str:
    """How text dates read: detected (asking when a column reads both ways), an order, or a
    pattern the analyst types."""
    current = base.date_format if base else ""
    options = list(DATE_FORMATS) + ([current] if current not in DATE_FORMATS else [])
    got = where.selectbox(
        ctx.t("up_pf_date_format"),
        options,
        index=options.index(current),
        format_func=lambda f: ctx.t("up_pf_date_" + f) if f in ("", "dmy", "mdy", "ymd") else f,
        accept_new_options=True,
        help=ctx.t("up_pf_date_format_help"),
        key=p + "datefmt",
    )
    return (got or "").strip()


def measures_editor(
    ctx: PageContext, columns: list[str], base: profile.Profile | None, p: str
) -> list[profile.Measure]:
    """One row per KPI: its aggregation of a column or of an expression, and one filter."""
    st.markdown(f"**{ctx.t('up_pf_measures')}**")
    st.caption(ctx.t("up_pf_measures_help"))
    kpis = sorted(
        (k for k in ctx.cat.kpis.values() if k.aggregation in STORED),
        key=lambda k: (k.sort_order, k.code),
    )
    kpi_names = {k.code: f"{k.code} · {k.name(ctx.lang)}" for k in kpis}
    if base and any(len(m.filters) > 1 for m in base.measures):
        st.warning(ctx.t("up_pf_more_filters"))
    edited = st.data_editor(
        measures_frame(base),
        num_rows="dynamic",
        hide_index=True,
        placeholder="—",
        width="stretch",
        key=p + "measures",
        column_config={
            "kpi": st.column_config.SelectboxColumn(
                ctx.t("up_pf_kpi"),
                options=list(kpi_names),
                format_func=lambda c: kpi_names.get(c, c),
                required=True,
                width="medium",
            ),
            "agg": st.column_config.SelectboxColumn(
                ctx.t("up_pf_agg"),
                options=list(profile.AGGS),
                format_func=lambda a: ctx.t("up_agg_" + a),
                required=True,
                default="sum",
            ),
            "column": st.column_config.SelectboxColumn(ctx.t("up_pf_column"), options=columns),
            "expression": st.column_config.TextColumn(
                ctx.t("up_pf_expression"), help=ctx.t("up_pf_expression_help")
            ),
            "filter_column": st.column_config.SelectboxColumn(
                ctx.t("up_pf_filter_column"), options=columns
            ),
            "filter_op": st.column_config.SelectboxColumn(
                ctx.t("up_pf_filter_op"), options=list(profile.OPS)
            ),
            "filter_value": st.column_config.TextColumn(ctx.t("up_pf_filter_value")),
        },
    )
    return measures_from(edited)


def _unit_map(ctx, values, column, codes, unit_name, base, p, growable=False) -> dict[str, str]:
    """The unit column's distinct values against unit codes; empty where a value is already a
    unit's code or name. `growable`: the analyst may add values (rows) of their own."""
    known = {norm(k): v for k, v in (base.unit_map if base else {}).items()}
    mapped = [known.get(norm(v)) for v in values]
    st.caption(ctx.t("up_pf_unit_map_rows" if growable else "up_pf_unit_map"))
    edited = st.data_editor(
        pd.DataFrame({"value": values, "code": mapped}, dtype=object),
        hide_index=True,
        placeholder="—",
        width="stretch",
        num_rows="dynamic" if growable else "fixed",
        key=p + "umap_" + hashlib.sha1(column.encode()).hexdigest()[:8],
        column_config={
            "value": st.column_config.TextColumn(
                ctx.t("up_pf_value_in_source" if growable else "up_pf_value_in_file"),
                disabled=not growable,
            ),
            "code": st.column_config.SelectboxColumn(
                ctx.t("up_pf_unit_code"), options=codes, format_func=unit_name
            ),
        },
    )
    return {
        str(v).strip(): str(c)
        for v, c in zip(edited["value"], edited["code"], strict=True)
        if isinstance(v, str) and v.strip() and isinstance(c, str) and c and c != v.strip()
    }


def _try_profile(ctx: PageContext, candidate: profile.Profile, tables, file_id: str) -> None:
    st.markdown(f"**{ctx.t('up_pf_try')}**")

    def attempt():
        try:
            return profile.apply(candidate, tables)
        except profile.ProfileError as exc:
            return exc

    got = kept("up_pf_try", (file_id, candidate.to_json()), attempt)
    if isinstance(got, profile.ProfileError):
        st.warning(translate(str(got), ctx.lang))
        return
    records, findings = got
    if findings:
        st.dataframe(
            findings_frame(findings, ctx.lang), hide_index=True, placeholder="—", width="stretch"
        )
    if not len(records):
        st.caption(ctx.t("up_pf_try_empty"))
        return
    st.dataframe(
        records_frame(records, ctx.lang),
        hide_index=True,
        placeholder="—",
        width="stretch",
        column_config={ctx.t("value"): st.column_config.NumberColumn(format="localized")},
    )


# --- 8: closing months (admins) and publishing them (analysts and admins) ---------------------


def months_section(ctx: PageContext) -> None:
    done = st.session_state.pop("up_lock_done", None)
    if done:
        st.success(done)
    publish_section(ctx)
    if not can(ctx.actor, "close_months"):
        return
    st.subheader(ctx.t("up_close_title"))
    st.caption(ctx.t("up_months_help"))
    with safe(ctx):
        closed = intake.closed_months(ctx.wh)
        label = ", ".join(i18n.period_label(f"{m:%Y-%m}", ctx.lang) for m in closed)
        st.markdown(ctx.t("up_months_closed", months=label) if closed else ctx.t("up_months_none"))
        span = data_range(ctx.wh, ctx.actor.scope, ctx.cat)
        today = clock.today()
        months, _ = month_options(span[1] if span else None, today)
        months = sorted(set(months) | set(closed), reverse=True)
        latest = span[1].replace(day=1) if span else today.replace(day=1)
        month = st.selectbox(
            ctx.t("up_month_pick"),
            months,
            index=months.index(latest) if latest in months else 0,
            format_func=lambda m: (
                i18n.period_label(f"{m:%Y-%m}", ctx.lang) + (" 🔒" if m in closed else "")
            ),
            key="up_lock_month",
            width=320,
        )
        shut = month in closed
        if st.button(
            ctx.t("up_month_reopen" if shut else "up_month_close"),
            icon=":material/lock_open:" if shut else ":material/lock:",
            key="up_lock_button",
        ):
            intake.lock_month(ctx.wh, month, ctx.actor, locked=not shut)
            for held in HELD:  # check the upload or the pull again against the locks
                st.session_state.pop(held, None)
            shown = i18n.period_label(f"{month:%Y-%m}", ctx.lang)
            st.session_state.up_lock_done = ctx.t(
                "up_month_reopened" if shut else "up_month_closed", month=shown
            )
            st.rerun()


def publish_section(ctx: PageContext) -> None:
    """Mark a unit's month published (final, whatever is missing) or withdraw that; the state
    of the month picked is shown first, with what it lacks."""
    st.subheader(ctx.t("up_publish_title"))
    st.caption(ctx.t("up_publish_help"))
    with safe(ctx):
        lang, cat = ctx.lang, ctx.cat
        done = completeness.published_months(ctx.wh, cat, ctx.actor.scope)
        listed = [
            f"{cat.units[u].name(lang)} {i18n.period_label(f'{m:%Y-%m}', lang)}" for m, u in done
        ]
        st.markdown(
            ctx.t("up_published_list", items=md(i18n.join(listed, lang, limit=12)))
            if listed
            else ctx.t("up_published_none")
        )
        span = data_range(ctx.wh, ctx.actor.scope, cat)
        if span is None:
            st.info(ctx.t("no_data_yet"))
            return
        units = [u for root in cat.scope_roots(ctx.actor.scope) for u in cat.descendants(root)]
        units = [u for u in units if cat.tree(span[1]).get((u, SCORECARD))] or units
        months, _ = month_options(span[1], clock.today())
        months = [m for m in months if m <= span[1]]
        cols = st.columns(2)
        unit_id = cols[0].selectbox(
            ctx.t("up_publish_unit"),
            units,
            format_func=lambda u: cat.units[u].name(lang),
            key="up_publish_unit",
        )
        month = cols[1].selectbox(
            ctx.t("up_month_pick"),
            months,
            format_func=lambda m: i18n.period_label(f"{m:%Y-%m}", lang),
            key="up_publish_month",
        )
        status = completeness.month_status(ctx.wh, cat, unit_id, month)
        state = i18n.month_state(status.state, status.loaded, status.expected, lang)
        shown = i18n.period_label(f"{month:%Y-%m}", lang)
        name = cat.units[unit_id].name(lang)
        text = ctx.t("up_publish_state", unit=md(name), month=shown, state=state)
        lacking = parts_text(ctx, status)
        st.markdown(f"{text} {md(lacking)}" if lacking and not status.published else text)
        mine = (month, unit_id) in done
        if st.button(
            ctx.t("up_unpublish" if mine else "up_publish"),
            icon=":material/undo:" if mine else ":material/verified:",
            key="up_publish_button",
        ):
            completeness.publish(ctx.wh, cat, ctx.actor, unit_id, month, published=not mine)
            key = "up_unpublished_done" if mine else "up_published_done"
            st.session_state.up_lock_done = ctx.t(key, unit=name, month=shown)
            st.rerun()
