"""The only part of kpi_core that imports streamlit: page set-up, navigation, pickers, widgets.

Every page starts with `page(...)`, which sets the page up even when it is reached by a deep link
on a cold server (DESIGN.md §2): config, language, warehouse, acting user, navigation.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import streamlit as st

from kpi_core import i18n, service
from kpi_core.catalog import SCORECARD, Catalog, load_catalog
from kpi_core.errors import KpiError, WarehouseBusyError
from kpi_core.periods import Period, PeriodError, add_months, parse_period
from kpi_core.warehouse import Warehouse, resolve_path

PAGES = (
    ("app.py", "nav_overview", ":material/dashboard:"),
    ("pages/1_Board.py", "nav_board", ":material/space_dashboard:"),
)

# Until sign-in arrives the app acts as the demo admin; the core is already scoped.
DEFAULT_USER = "admin"


@st.cache_resource(show_spinner=False)
def _warehouse(path: str) -> Warehouse:
    wh = Warehouse(path)
    service.ensure_demo(wh)
    return wh


@dataclass
class PageContext:
    wh: Warehouse
    cat: Catalog
    actor: service.Actor
    lang: str

    def t(self, key: str, **values: object) -> str:
        return i18n.t(key, self.lang, **values)


def _language() -> str:
    if "lang" not in st.session_state:
        asked = st.query_params.get("lang")
        locale = (st.context.locale or "") if hasattr(st.context, "locale") else ""
        st.session_state.lang = (
            asked if asked in i18n.LANGS else "zh" if locale.lower().startswith("zh") else "en"
        )
    return st.session_state.lang


def page(title_key: str) -> PageContext:
    lang = _language()
    st.set_page_config(
        page_title=f"{i18n.t(title_key, lang)} · {i18n.t('app_title', lang)}",
        page_icon=":material/monitoring:",
        layout="wide",
    )
    with st.sidebar:
        st.markdown(f"### {i18n.t('app_title', lang)}")
        for path, key, icon in PAGES:
            st.page_link(path, label=i18n.t(key, lang), icon=icon)
        st.divider()
        choice = st.segmented_control(
            i18n.t("language", lang),
            options=list(i18n.LANGS),
            format_func=lambda code: "中文" if code == "zh" else "English",
            default=lang,
            key="lang_choice",
        )
        if choice and choice != lang:
            st.session_state.lang = choice
            st.query_params["lang"] = choice
            st.rerun()
    try:
        wh = _warehouse(resolve_path())
        cat = load_catalog(wh)
        who = service.default_actor(wh, DEFAULT_USER)
    except WarehouseBusyError:
        st.warning(i18n.t("warehouse_busy", lang))
        st.stop()
    except KpiError as exc:
        st.error(str(exc))
        st.stop()
    if not cat.units:
        st.info(i18n.t("empty_warehouse", lang))
        st.stop()
    with st.sidebar:
        st.caption(
            f"{i18n.t('signed_in_as', lang)}: **{who.name}** · {i18n.t('role_' + who.role, lang)}"
        )
    return PageContext(wh, cat, who, lang)


@contextmanager
def guard(ctx: PageContext) -> Iterator[None]:
    """A page never shows a traceback: domain errors become a clear message."""
    try:
        yield
    except WarehouseBusyError:
        st.warning(ctx.t("warehouse_busy"))
    except KpiError as exc:
        st.error(str(exc))


def unit_picker(ctx: PageContext, latest: Period | None = None) -> int:
    """Units in the user's scope that have a scorecard, indented by depth; kept in the URL."""
    month = latest.end if latest else None
    options = []
    for root in ctx.cat.scope_roots(ctx.actor.scope):
        for u in ctx.cat.descendants(root):
            if month is None or ctx.cat.tree(month).get((u, SCORECARD)):
                options.append(u)
    if not options:
        st.info(ctx.t("no_scorecard"))
        st.stop()
    by_code = {ctx.cat.units[u].code: u for u in options}
    asked = st.query_params.get("unit")
    default = by_code.get(asked, options[0])
    root_depth = min(len(ctx.cat.ancestors(u)) for u in options)

    def label(u: int) -> str:
        depth = len(ctx.cat.ancestors(u)) - root_depth
        return "\u2003" * depth + ctx.cat.units[u].name(ctx.lang)

    chosen = st.sidebar.selectbox(
        ctx.t("unit"), options, index=options.index(default), format_func=label, key="unit_pick"
    )
    st.query_params["unit"] = ctx.cat.units[chosen].code
    return chosen


def period_picker(ctx: PageContext, latest_month) -> Period:
    """Month, quarter or year, newest first, from the latest month with data back three years."""
    asked = st.query_params.get("period")
    try:
        wanted = parse_period(asked) if asked else None
    except PeriodError:
        wanted = None
    grains = ["M", "Q", "Y"]
    grain = (
        st.sidebar.segmented_control(
            ctx.t("grain"),
            grains,
            format_func=lambda g: ctx.t(f"grain_{g}"),
            default=wanted.grain if wanted else "M",
            key="grain_pick",
        )
        or "M"
    )
    months = [add_months(latest_month, -i) for i in range(36)]
    seen, options = set(), []
    for m in months:
        p = Period(
            grain,
            m
            if grain == "M"
            else m.replace(month=1 if grain == "Y" else (m.month - 1) // 3 * 3 + 1),
        )
        if p not in seen:
            seen.add(p)
            options.append(p)
    index = options.index(wanted) if wanted in options else 0
    chosen = st.sidebar.selectbox(
        ctx.t("period"),
        options,
        index=index,
        format_func=lambda p: i18n.period_label(p.label(), ctx.lang),
        key=f"period_pick_{grain}",
    )
    st.query_params["period"] = chosen.label()
    return chosen
