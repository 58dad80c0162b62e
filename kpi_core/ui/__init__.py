"""The only part of kpi_core that imports streamlit: page set-up, navigation, pickers, widgets.

Every page starts with `page(...)`, which sets the page up even when it is reached by a deep link
on a cold server (DESIGN.md §2): config, language, warehouse, acting user, navigation.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import date

import streamlit as st

from kpi_core import access, clock, completeness, i18n, people, service
from kpi_core.access import roles_for
from kpi_core.board import periods_between
from kpi_core.catalog import SCORECARD, Catalog, load_catalog
from kpi_core.errors import KpiError, WarehouseBusyError
from kpi_core.periods import Period, PeriodError, parse_period
from kpi_core.texts import N_
from kpi_core.warehouse import Warehouse, open_warehouse, resolve_path

from . import signin

# (file, label key, icon, roles that may open it — None: everyone)
PAGES = (
    ("app.py", "nav_overview", ":material/dashboard:", None),
    ("pages/1_Board.py", N_("nav_board"), ":material/space_dashboard:", None),
    ("pages/5_Tree.py", "nav_tree", ":material/account_tree:", None),
    ("pages/7_Trends.py", N_("tr_nav"), ":material/trending_up:", None),
    ("pages/11_Detail.py", N_("dt_nav"), ":material/troubleshoot:", None),
    ("pages/8_Alerts.py", "nav_alerts", ":material/notifications:", None),
    ("pages/2_Upload.py", N_("nav_upload"), ":material/upload_file:", roles_for("load_actuals")),
    ("pages/3_Sources.py", N_("nav_sources"), ":material/database:", roles_for("define_sources")),
    ("pages/6_Targets.py", "nav_targets", ":material/target:", None),
    ("pages/4_Library.py", N_("nav_library"), ":material/menu_book:", roles_for("edit_library")),
    (
        "pages/10_Admin.py",
        N_("ad_nav"),
        ":material/admin_panel_settings:",
        roles_for("manage_users"),
    ),
    ("pages/9_Big_Screen.py", "bs_title", ":material/tv:", roles_for("manage_screens")),
)


_SHARED: dict[str, Warehouse] = {}
_SHARED_LOCK = threading.Lock()
GRAINS = {"M": N_("grain_M"), "Q": N_("grain_Q"), "Y": N_("grain_Y")}  # the period types


def shared_warehouse(path: str) -> Warehouse:
    """This process's one Warehouse object for `path`, shared by the pages and the sign-in
    routes (kpi_core/ui/server.py): one object, so their writes are serialised by its lock."""
    with _SHARED_LOCK:
        wh = _SHARED.get(path)
        if wh is None:
            wh = open_warehouse(path)
            service.ensure_demo(wh, today=clock.today())
            _SHARED[path] = wh
        return wh


@st.cache_resource(show_spinner=False)
def _warehouse(path: str) -> Warehouse:
    return shared_warehouse(path)


@dataclass
class PageContext:
    wh: Warehouse
    cat: Catalog
    actor: access.Actor
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
    st.query_params["lang"] = lang
    st.set_page_config(
        page_title=f"{i18n.t(title_key, lang)} · {i18n.t('app_title', lang)}",
        page_icon=":material/monitoring:",
        layout="wide",
    )
    with st.sidebar:
        _collapse_after_navigating()
        st.markdown(f"### {i18n.t('app_title', lang)}")
        # Filled once the user's role is known: only the pages they may open.
        nav = st.container()
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
        name = signin.gate(wh, lang)
        cat = load_catalog(wh)
        who = service.actor(wh, name) if name else access.SYSTEM
    except WarehouseBusyError:
        _navigation(nav, lang, None)
        st.warning(i18n.t("warehouse_busy", lang))
        st.stop()
    except KpiError as exc:
        _navigation(nav, lang, None)
        st.error(exc.text(lang))
        st.stop()
    _navigation(nav, lang, who.role)
    if not cat.units:
        st.info(i18n.t("empty_warehouse", lang))
        st.stop()
    with st.sidebar:
        if name:
            # The user id is what one signs in with; the display name is how everyone else
            # names this person (comments, owners, the wall), so both are shown here.
            shown = people.load(wh).name(who.name)
            st.caption(
                f"{i18n.t('signed_in_as', lang)}: **{who.name}**"
                + (f" · {shown}" if shown and shown != who.name else "")
                + f" · {i18n.t('role_' + who.role, lang)}"
            )
            signin.sign_out_button(wh, name, lang)
        else:
            st.warning(i18n.t("si_no_users", lang))
    return PageContext(wh, cat, who, lang)


# On a narrow screen the sidebar lies over the page. Streamlit closes it after a click in its
# own page list, but not after a st.page_link (Streamlit 1.67 has no call to close it), so the
# page just opened stayed hidden under it. This closes it as its own button does, after a
# navigation link in it is clicked, below Streamlit's breakpoint for an overlaid sidebar (md,
# 768 px). A constant script: nothing of a user's goes into it.
_COLLAPSE_SCRIPT = """<script>
if (!window.kpiCollapseOnNavigate) {
  window.kpiCollapseOnNavigate = true;
  document.addEventListener("click", (event) => {
    const link = event.target.closest("[data-testid='stSidebar'] [data-testid='stPageLink-NavLink']");
    if (!link || window.innerWidth >= 768) return;
    setTimeout(() => {
      const close = document.querySelector("[data-testid='stSidebarCollapseButton'] button");
      if (close) close.click();
    }, 0);
  }, true);
}
</script>"""


def _collapse_after_navigating() -> None:
    # In a hidden container, so the sidebar keeps no gap for it; the script runs all the same.
    with st.container(key="kpi_collapse_script"):
        st.html(
            _COLLAPSE_SCRIPT
            + "<style>[data-testid='stLayoutWrapper']:has(> .st-key-kpi_collapse_script)"
            " { display: none; }</style>",
            unsafe_allow_javascript=True,
        )


def _navigation(nav, lang: str, role: str | None) -> None:
    """Links to the pages `role` may open (those open to everyone while it is unknown), keeping
    the language and the period picked."""
    keep = {"lang": lang}
    if "period" in st.session_state and st.session_state.get("period_chosen"):
        keep["period"] = st.session_state.period.label()
    with nav:
        for path, key, icon, roles in PAGES:
            if roles is None or role in roles:
                st.page_link(path, label=i18n.t(key, lang), icon=icon, query_params=keep)


def unit_picker(ctx: PageContext, month: date) -> int:
    """Units in the user's scope with a scorecard, indented by depth; remembered and in the URL.

    A unit asked for by URL that has no scorecard of its own (a region, a line) shows its
    nearest unit above that has one, and says so.
    """
    options = [
        u
        for root in ctx.cat.scope_roots(ctx.actor.scope)
        for u in ctx.cat.descendants(root)
        if ctx.cat.tree(month).get((u, SCORECARD))
    ]
    if not options:
        st.info(ctx.t("no_scorecard"))
        st.stop()
    if "unit" not in st.session_state:
        st.session_state.unit = options[0]
        asked = st.query_params.get("unit")
        if asked:
            st.session_state.unit = _asked_unit(ctx, asked, options)
    if st.session_state.unit not in options:
        st.session_state.unit = options[0]
    root_depth = min(len(ctx.cat.ancestors(u)) for u in options)

    def label(u: int) -> str:
        depth = len(ctx.cat.ancestors(u)) - root_depth
        return "\u2003" * depth + ctx.cat.units[u].name(ctx.lang)

    def chosen() -> None:
        st.session_state.unit = st.session_state.unit_pick

    st.session_state.unit_pick = st.session_state.unit
    st.sidebar.selectbox(
        ctx.t("unit"), options, format_func=label, key="unit_pick", on_change=chosen
    )
    st.query_params["unit"] = ctx.cat.units[st.session_state.unit].code
    return st.session_state.unit


def _asked_unit(ctx: PageContext, code: str, options: list[int]) -> int:
    unit = ctx.cat.unit_by_code.get(code)
    if unit is None or not ctx.actor.scope.allows(unit.id):
        st.warning(ctx.t("unknown_unit", code=code, shown=ctx.cat.units[options[0]].name(ctx.lang)))
        return options[0]
    for u in [unit.id, *ctx.cat.ancestors(unit.id)]:
        if u in options:
            if u != unit.id:
                st.info(
                    ctx.t("unit_without_scorecard", unit=unit.name(ctx.lang),
                          shown=ctx.cat.units[u].name(ctx.lang))
                )  # fmt: skip
            return u
    return options[0]


def period_picker(
    ctx: PageContext, first: date, latest: date, view: completeness.InView | None = None
) -> Period:
    """Month, quarter or year among those with data, newest first; in the URL once picked.

    Until the user picks one (here or by URL), the period is the month `view` says (the latest
    complete or published month of the unit in view), following the unit as it changes. Newer
    months not complete yet stay in the list, marked with their state. Switching between month,
    quarter and year keeps to the same time: 2025-03 becomes 2025-Q1.
    """
    default = view.default if view else latest
    newer = view.newer if view else {}
    if "period" not in st.session_state:
        st.session_state.period, st.session_state.period_chosen = _asked_period(
            ctx, first, latest, default
        )
    elif not st.session_state.get("period_chosen"):
        st.session_state.period = Period("M", default)

    def regrain() -> None:
        grain = st.session_state.grain_pick or st.session_state.period.grain
        current = st.session_state.period
        month = min(current.end, latest) if grain == "M" else current.start
        st.session_state.period = Period.containing(grain, month)
        st.session_state.period_chosen = True

    st.session_state.grain_pick = st.session_state.period.grain
    grain = (
        st.sidebar.segmented_control(
            ctx.t("grain"),
            ["M", "Q", "Y"],
            format_func=lambda g: ctx.t(GRAINS[g]),
            key="grain_pick",
            on_change=regrain,
        )
        or st.session_state.period.grain
    )
    options = periods_between(grain, first, latest)
    if st.session_state.period not in options:
        st.session_state.period = options[0]
    key = f"period_pick_{grain}"

    def chosen() -> None:
        st.session_state.period = st.session_state[key]
        st.session_state.period_chosen = True

    def label(p: Period) -> str:
        text = i18n.period_label(p.label(), ctx.lang)
        marked = [newer[m] for m in p.months if m in newer]
        if p.grain == "M" and marked:
            s = marked[0]
            return f"{text} · {i18n.month_state(s.state, s.loaded, s.expected, ctx.lang)}"
        return f"{text} · {ctx.t('cm_option_partial')}" if marked else text

    st.session_state[key] = st.session_state.period
    st.sidebar.selectbox(ctx.t("period"), options, format_func=label, key=key, on_change=chosen)
    if st.session_state.period_chosen:
        st.query_params["period"] = st.session_state.period.label()
    elif "period" in st.query_params:
        del st.query_params["period"]
    return st.session_state.period


def _asked_period(
    ctx: PageContext, first: date, latest: date, default_month: date
) -> tuple[Period, bool]:
    """The period asked for in the URL, and True; else the default month, and False."""
    default = Period("M", default_month)
    asked = st.query_params.get("period")
    if not asked:
        return default, False
    shown = i18n.period_label(default.label(), ctx.lang)
    try:
        period = parse_period(asked)
    except PeriodError:
        st.warning(ctx.t("bad_period", period=asked, shown=shown))
        return default, False
    if period.end < first or period.start > latest:
        st.warning(
            ctx.t("period_without_data", period=i18n.period_label(period.label(), ctx.lang),
                  first=i18n.period_label(Period("M", first).label(), ctx.lang),
                  latest=i18n.period_label(Period("M", latest).label(), ctx.lang), shown=shown)
        )  # fmt: skip
        return default, False
    return period, True
