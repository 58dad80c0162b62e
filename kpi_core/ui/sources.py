"""The Sources page's sections (DESIGN.md §6): saved database sources and exports, defining one
(URL, test, tables, query, limits, sample, mapping), pulling it, and the pulls' history.

The work is in `kpi_core.ingest.sources`; this module draws it. A pull shows the same report,
preview and load as an upload (`kpi_core.ui.intake_panels`), and nothing is written before the analyst
clicks Load. Connecting to a database happens only on a click (test, sample, pull), never because
the page ran again.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from collections.abc import Callable

import pandas as pd
import streamlit as st

from kpi_core import clock
from kpi_core.errors import KpiError, WarehouseBusyError
from kpi_core.ingest import profile, sources
from kpi_core.ingest.names import norm
from kpi_core.messages import Message, render
from kpi_core.ui import PageContext
from kpi_core.ui.boundary import guard
from kpi_core.ui.definition_files import download, opened
from kpi_core.ui.intake_frames import shown_cells
from kpi_core.ui.intake_panels import (
    bindings_section,
    commit_panel,
    done_message,
    history_section,
    preview,
    report,
    say,
    step_text,
)
from kpi_core.ui.mapping_editor import mapping_fields
from kpi_core.ui.source_frames import (
    caution_text,
    listing_frame,
    mapped_columns,
    month_choices,
    month_text,
    next_month,
    query_table,
    select_all,
)
from kpi_core.ui.widgets import confirmed, error_text, md

log = logging.getLogger(__name__)


SAMPLE_ROWS = 50


MONTH_MODES = ("new", "all", "range")


_PREFILL = re.compile(r"\s*SELECT \* FROM \S+\s*", re.I)


def _attempt(
    ctx: PageContext, work: Callable[[], object], url: str = ""
) -> tuple[object, str | None]:
    """(result, None), or (None, the message to show) — kept in the session as they are. The
    values of the URL's secret references never reach the page or the log."""
    try:
        return work(), None
    except WarehouseBusyError:
        return None, ctx.t("warehouse_busy")
    except KpiError as exc:
        return None, sources.redact(error_text(ctx, exc), url)
    except Exception as exc:
        said = sources.redact(f"{type(exc).__name__}: {exc}", url)
        log.error("talking to a source: %s", said)
        return None, ctx.t("src_unexpected", error=said)


def refusal(ctx: PageContext, text: KpiError | str) -> None:
    """A refusal from the core, in the page's language. Its `${…}` references are shown as
    written: two `$` in one message would otherwise be typeset as a formula."""
    st.error(error_text(ctx, text).replace("$", "\\$"))


def _refusal(work: Callable[[], object]) -> Message | str | None:
    """What the core says refusing `work`, or None."""
    try:
        work()
    except KpiError as exc:
        return exc.said()
    return None


def _tag(*parts: object) -> str:
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:10]


# --- the source picked ------------------------------------------------------------------------


def source_picker(ctx: PageContext) -> str | None:
    """Above the tabs: a saved source to edit, pull or delete, or a new one."""
    with guard(ctx, "src_unexpected"):
        names = list(sources.listing(ctx.wh)["name"])
        # Set before the widget is drawn: the source just saved, or none after a delete.
        if "src_pick_next" in st.session_state:
            wanted = st.session_state.pop("src_pick_next")
            st.session_state.src_pick = wanted if wanted in names else None
        if st.session_state.get("src_pick") not in [None, *names]:
            st.session_state.src_pick = None
        return st.selectbox(
            ctx.t("src_pick"),
            [None, *names],
            format_func=lambda n: ctx.t("src_pick_new") if n is None else n,
            key="src_pick",
            help=ctx.t("src_pick_help"),
            width=480,
        )
    return None


# --- 1: the list ------------------------------------------------------------------------------


def list_section(ctx: PageContext) -> None:
    with guard(ctx, "src_unexpected"):
        df = sources.listing(ctx.wh)
        if not len(df):
            st.info(ctx.t("src_none"))
            return
        st.caption(ctx.t("src_list_help"))
        st.dataframe(listing_frame(df, ctx.lang), hide_index=True, placeholder="—", width="stretch")


# --- 2: defining a source ---------------------------------------------------------------------


def define_section(ctx: PageContext, name: str | None) -> None:
    done = st.session_state.pop("src_def_done", None)
    if done:
        st.success(done)
    with guard(ctx, "src_unexpected"):
        base = sources.load(ctx.wh, name) if name else None
        if base:
            download(ctx, base, "src_dl_saved", ctx.t("def_download_saved"))
        # A TOML file (source export, or downloaded here) opens in the editor in place of the
        # source picked; saving it saves under the file's name.
        loaded, tag = opened(ctx, "source", "src_toml")
        if loaded is not None:
            _definition(ctx, loaded, from_file=tag)
        else:
            _definition(ctx, base)


def _init(key: str, value: object) -> None:
    """A widget's starting value, set once through the session (callbacks may change it)."""
    if key not in st.session_state:
        st.session_state[key] = value


def _definition(ctx: PageContext, base: sources.Source | None, from_file: str = "") -> None:
    # Widgets are keyed by the source (or the opened file): picking another one starts from its
    # saved settings.
    p = f"src_file_{from_file}_" if from_file else f"src_{_tag(base.name)}_" if base else "src_new_"
    _init(p + "name", base.name if base else "")
    _init(p + "url", base.url if base else "")
    _init(p + "query", base.query if base else "")
    _init(p + "rows", base.row_limit if base else sources.DEFAULT_ROW_LIMIT)
    _init(p + "secs", base.timeout_s if base else sources.DEFAULT_TIMEOUT_S)

    left, right = st.columns([1, 2], gap="medium")
    name = left.text_input(
        ctx.t("src_name"), key=p + "name", placeholder=ctx.t("src_name_placeholder")
    ).strip()
    url = right.text_input(
        ctx.t("src_url"),
        key=p + "url",
        placeholder="postgresql+psycopg://reader:${secrets.source_secrets.erp}@db.example.com/erp",
        help=ctx.t("src_url_help"),
    ).strip()
    url_error = None
    if url:
        try:
            sources.check_url(url)
        except KpiError as exc:
            url_error = exc.said()
            refusal(ctx, exc)

    tables = _connection(ctx, url, p, ready=bool(url) and not url_error)
    _table_browser(ctx, tables, url, p)

    query = st.text_area(
        ctx.t("src_query"),
        key=p + "query",
        height=140,
        placeholder="SELECT order_date, region, amount, status FROM orders",
        help=ctx.t("src_query_help"),
    )
    query_error = None
    if (query or "").strip():
        try:
            sources.check_query(query, url)
        except KpiError as exc:
            query_error = exc.said()
            refusal(ctx, exc)
    left, right = st.columns(2, gap="medium")
    row_limit = left.number_input(
        ctx.t("src_row_limit"),
        min_value=1,
        step=100_000,
        key=p + "rows",
        help=ctx.t("src_row_limit_help"),
    )
    timeout_s = right.number_input(
        ctx.t("src_time_limit"),
        min_value=1,
        max_value=86_400,
        step=10,
        key=p + "secs",
        help=ctx.t("src_time_limit_help"),
    )

    runnable = bool(url) and not url_error and bool((query or "").strip()) and not query_error
    sample = _sample(ctx, url, query, int(timeout_s), p, runnable)

    st.subheader(ctx.t("src_mapping"))
    st.caption(ctx.t("src_mapping_help"))
    columns = [str(c) for c in sample.columns] if sample is not None else []
    if not columns and (table := query_table(query or "", tables or {}, url)):
        columns = list(tables[table])
    # What the query is known to return (its sample, or the table it reads whole), before the
    # saved mapping's own columns are added to choose from: the mapping is checked against it.
    returned = list(columns) if columns else None
    for c in mapped_columns(base.mapping if base else None):
        if norm(c) not in {norm(x) for x in columns}:
            columns.append(c)
    mapping = base.mapping if base else profile.Profile(name="", date_column="", measures=[])
    if columns:

        def values_of(column: str) -> list[str]:
            if sample is None or column not in sample.columns:
                return []
            return sorted({str(v).strip() for v in sample[column].dropna()} - {""})

        fields = mapping_fields(
            ctx, columns, base.mapping if base else None, f"{p}m{_tag(columns)}_", values_of,
            growable=True,
        )  # fmt: skip
        mapping = profile.Profile(name="", **fields)
    else:
        st.info(ctx.t("src_mapping_needs_columns"))

    candidate = sources.Source(name, url, query or "", mapping, int(row_limit), int(timeout_s))
    problems = [q for q in candidate.problems(returned) if q not in (url_error, query_error)]
    if not url:  # not "'' is not a database URL": there is none yet
        problems = [q for q in problems if q != _refusal(lambda: sources.check_url(""))]
        problems.insert(1 if not name else 0, Message("src_need_url"))
    if problems:
        st.info(
            "\n".join([ctx.t("src_problems"), *(f"- {md(error_text(ctx, q))}" for q in problems)])
        )
    if base and name != base.name and name and not from_file:
        st.caption(ctx.t("src_save_as", name=name, old=base.name))
    with st.container(horizontal=True):
        save = st.button(
            ctx.t("src_save"),
            type="primary",
            icon=":material/save:",
            disabled=bool(problems or url_error or query_error),
            key=p + "save",
        )
        if base and not from_file:
            _delete_button(ctx, base, p)
        if not (problems or url_error or query_error):
            download(ctx, candidate, p + "dl", ctx.t("def_download_edited"))
    if save:
        sources.save(ctx.wh, candidate, ctx.actor)
        st.session_state.src_def_done = ctx.t("src_saved", name=candidate.name)
        st.session_state.src_pick_next = candidate.name
        st.session_state.pop("src_intake", None)  # a held pull of the old definition is stale
        st.rerun()
    if base and not from_file and confirmed(
        "src_delete_pending", base.name, ctx.t("src_delete_confirm", name=base.name),
        ctx.t("src_delete_yes"), ctx.t("up_cancel"), p,
    ):  # fmt: skip
        sources.delete(ctx.wh, base.name, ctx.actor)
        st.session_state.src_def_done = ctx.t("src_deleted", name=base.name)
        st.session_state.src_pick_next = None
        st.session_state.pop("src_intake", None)
        st.rerun()


def _delete_button(ctx: PageContext, base: sources.Source, p: str) -> None:
    if st.button(ctx.t("src_delete"), icon=":material/delete:", key=p + "delete"):
        st.session_state.src_delete_pending = base.name
        st.rerun()


def _connection(ctx: PageContext, url: str, p: str, *, ready: bool) -> dict[str, list[str]] | None:
    """The Test connection button and what it found: the server's version and its tables."""
    clicked = st.button(
        ctx.t("src_test"), icon=":material/cable:", disabled=not ready, key=p + "test"
    )
    if clicked:
        with st.spinner(ctx.t("src_testing")):
            probe, error = _attempt(ctx, lambda: sources.test_connection(url), url)
            found = None
            if error is None:
                found, error = _attempt(ctx, lambda: sources.tables(url), url)
        st.session_state.src_conn = (url, probe, error, found)
    held = st.session_state.get("src_conn")
    if not held or held[0] != url or not ready:
        return None
    _, probe, error, found = held
    if probe:
        said = render(probe.said, ctx.lang)  # an export's "orders.csv: CSV file, …"
        st.success(ctx.t("src_connected", version=md(said)), icon=":material/check:")
        for caution in probe.cautions:
            st.warning(caution_text(caution, ctx.lang), icon=":material/warning:")
    if error:
        refusal(ctx, error)
    return found


def _table_browser(ctx: PageContext, tables: dict[str, list[str]] | None, url: str, p: str):
    if tables is None:
        return
    if not tables:
        st.info(ctx.t("src_no_tables"))
        return

    def prefill() -> None:
        table = st.session_state.get(p + "table")
        query = st.session_state.get(p + "query") or ""
        # Only an empty query, or one the page wrote: never the analyst's own SQL.
        if table and (not query.strip() or _PREFILL.fullmatch(query)):
            st.session_state[p + "query"] = select_all(table, url)

    left, right = st.columns([1, 2], gap="medium")
    table = left.selectbox(
        ctx.t("src_table"),
        list(tables),
        index=None,
        placeholder=ctx.t("src_table_placeholder", n=len(tables)),
        key=p + "table",
        on_change=prefill,
    )
    if table:
        right.markdown(
            ctx.t("src_table_columns", table=md(table), columns=md(", ".join(tables[table])))
        )
        query = st.session_state.get(p + "query") or ""
        mine = query.strip() and not _PREFILL.fullmatch(query)
        if mine and right.button(ctx.t("src_use_table", table=table), key=p + "use_table"):
            st.session_state[p + "query"] = select_all(table, url)
            st.rerun()
    with st.expander(ctx.t("src_all_tables", n=len(tables))):
        st.dataframe(
            pd.DataFrame(
                {
                    ctx.t("src_col_table"): list(tables),
                    ctx.t("src_col_columns"): [", ".join(c) for c in tables.values()],
                }
            ),
            hide_index=True,
            width="stretch",
        )


def _sample(
    ctx: PageContext, url: str, query: str, timeout_s: int, p: str, runnable: bool
) -> pd.DataFrame | None:
    """Run a sample: the query's first rows, to see its columns and values before mapping."""
    clicked = st.button(
        ctx.t("src_sample", n=SAMPLE_ROWS),
        icon=":material/table_view:",
        disabled=not runnable,
        key=p + "sample",
    )
    if clicked:
        with st.spinner(ctx.t("src_sampling")):
            got, error = _attempt(
                ctx,
                lambda: sources.sample(url, query, SAMPLE_ROWS, timeout_s=min(timeout_s, 60)),
                url,
            )
        st.session_state.src_sample = (url, query, got, error)
    held = st.session_state.get("src_sample")
    if not held or held[:2] != (url, query):
        return None
    _, _, got, error = held
    if error:
        refusal(ctx, error)
        return None
    if got is None or not len(got.columns):
        st.info(ctx.t("src_sample_empty"))
        return None
    if not len(got):  # no rows, but its columns can be mapped
        st.info(ctx.t("src_sample_empty"))
        return got
    st.caption(ctx.t("src_sample_rows", n=len(got)))
    st.dataframe(shown_cells(got), hide_index=True, width="stretch", height=240)
    return got


# --- 3: pulling -------------------------------------------------------------------------------


def pull_section(ctx: PageContext, name: str | None) -> None:
    done = st.session_state.pop("src_done", None)
    if done:
        getattr(st, done[0])(done[1])
    if not name:
        st.info(ctx.t("src_pull_pick"))
        return
    with guard(ctx, "src_unexpected"):
        _pull(ctx, sources.load(ctx.wh, name))


def _pull(ctx: PageContext, source: sources.Source) -> None:
    st.markdown(f"**{md(source.name)}** · `{sources.mask(source.url)}`")
    st.caption(ctx.t("src_limits", rows=f"{source.row_limit:,}", seconds=f"{source.timeout_s:,}"))
    with st.expander(ctx.t("src_the_query")):
        st.code(source.query, language="sql", wrap_lines=True)
    last = sources.last_pulled_month(ctx.wh, source.name)
    last = pd.Timestamp(last).date() if last is not None else None
    new_label = (
        ctx.t("src_months_new", month=month_text(last, ctx.lang))
        if last
        else ctx.t("src_months_new_first")
    )
    labels = {"new": new_label, "all": ctx.t("src_months_all"), "range": ctx.t("src_months_range")}
    mode = st.radio(
        ctx.t("src_months"),
        list(MONTH_MODES),
        format_func=labels.get,
        key="src_months",
        help=ctx.t("src_months_help"),
    )
    first = until = None
    if mode == "range":
        today = clock.today()
        months = month_choices(today)
        start = next_month(last) if last and next_month(last) in months else months[1]
        left, right = st.columns(2)
        first = left.selectbox(
            ctx.t("src_from"), months, index=months.index(start),
            format_func=lambda m: month_text(m, ctx.lang), key="src_from",
        )  # fmt: skip
        until = right.selectbox(
            ctx.t("src_to"), months, index=0,
            format_func=lambda m: month_text(m, ctx.lang), key="src_to",
        )  # fmt: skip
    backwards = first is not None and until is not None and first > until
    if backwards:
        st.error(ctx.t("src_range_backwards"))
    s = source
    definition = (s.url, s.query, s.mapping.to_json(), s.row_limit, s.timeout_s)
    key = (source.name, definition, mode, first, until)
    clicked = st.button(
        ctx.t("src_pull_button"),
        type="primary",
        icon=":material/cloud_download:",
        disabled=backwards,
        key="src_pull",
    )
    held = st.session_state.get("src_intake")
    if clicked:
        window = {"first": first, "last": until, "new_only": mode == "new"}
        held = (key, *_run_pull(ctx, source, window))
        st.session_state.src_intake = held
    elif held is not None and held[0] == key:
        _, it, error, seconds, rows = held
        st.status(
            ctx.t("src_pull_failed")
            if error
            else ctx.t("src_pulled", name=source.name, rows=f"{rows:,}", seconds=seconds),
            state="error" if error else "complete",
        )
    if held is None or held[0] != key:
        st.info(ctx.t("src_pull_hint"))
        return
    _, it, error, _, _ = held
    if error:
        refusal(ctx, error)
        return
    nothing_new = mode == "new" and last is not None and not len(it.rows)
    if nothing_new:
        st.info(ctx.t("src_nothing_new", month=month_text(last, ctx.lang)))
    st.markdown(say(ctx, it, "up_source_is", source=md(it.source)))
    tag = _tag(key)
    report(ctx, it, tag, hint=None if nothing_new else ctx.t("src_nothing_found_hint"))
    bindings_section(ctx, it)
    preview(ctx, it, tag)
    done = commit_panel(ctx, it, tag, key="src_commit")
    if done is not None:
        st.session_state.src_done = done_message(ctx, it, done)
        st.session_state.pop("src_intake", None)
        st.session_state.src_rb_newest = True  # the roll-back picker offers the new batch
        st.rerun()


def _run_pull(ctx: PageContext, source: sources.Source, window: dict):
    """Pull with a progress bar: (intake or None, error message or None, seconds, rows read)."""
    started = time.monotonic()
    rows = 0
    with st.status(ctx.t("src_pulling", name=source.name), expanded=True) as status:
        bar = st.progress(0.0, text=ctx.t("src_pulling", name=source.name))

        def progress(fraction: float, step: Message) -> None:
            nonlocal rows
            if step.key == "up_step_rows":
                rows = step.values["n"]
            bar.progress(min(max(float(fraction), 0.0), 1.0), text=step_text(ctx, step))

        it, error = _attempt(
            ctx,
            lambda: sources.prepare_pull(ctx.wh, source, ctx.actor, progress=progress, **window),
            source.url,
        )
        seconds = time.monotonic() - started
        if error:
            status.update(label=ctx.t("src_pull_failed"), state="error", expanded=False)
        else:
            status.update(
                label=ctx.t("src_pulled", name=source.name, rows=f"{rows:,}", seconds=seconds),
                state="complete",
                expanded=False,
            )
    return it, error, seconds, rows


# --- 4: history -------------------------------------------------------------------------------


def pulls_history(ctx: PageContext) -> None:
    st.caption(ctx.t("src_history_help"))
    history_section(ctx, prefix="src", kinds=("pull",))
