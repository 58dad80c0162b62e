"""The Big Screen page (pages/9_Big_Screen.py): a wall opened with a kiosk token, or previewed by a
signed-in user over their own scope. It hides Streamlit's chrome and redraws the slides
(`kpi_core.ui.slides`) in one fragment every few seconds: no Streamlit chrome, no sidebar, no
spinner. The data is read through `kpi_core.screen.LAST_GOOD` (refreshed every `refresh`
seconds; the last good data, marked stale, when the warehouse is busy). A refused wall shows a
notice.
"""

from __future__ import annotations

import time
from datetime import datetime

import streamlit as st

from kpi_core import clock, i18n, kiosk, screen
from kpi_core.catalog import load_catalog, load_user
from kpi_core.errors import NotFoundError
from kpi_core.screen import Snapshot
from kpi_core.ui import _warehouse, signin
from kpi_core.ui.boundary import guard
from kpi_core.ui.slides import BG, Params, notice, read_params, render
from kpi_core.warehouse import resolve_path

CSS = f"""
<style>
header[data-testid="stHeader"], [data-testid="stToolbar"], [data-testid="stSidebar"],
[data-testid="stSidebarCollapsedControl"], [data-testid="stDecoration"],
[data-testid="stStatusWidget"], [data-testid="stMainMenu"], [data-testid="stSidebarNav"],
[data-testid="stBottom"], [data-testid="stAppDeployButton"], footer,
[data-testid="stSkipToContent"] {{  /* nobody has a keyboard at the wall */
  display: none !important;
}}
html, body, .stApp, [data-testid="stAppViewContainer"], [data-testid="stMain"] {{
  background: {BG} !important; overflow: hidden !important;
}}
[data-testid="stMainBlockContainer"] {{ padding: 0 !important; max-width: none !important; }}
/* A rerun must not fade or dim what is on the wall. */
[data-stale="true"], [data-stale="true"] * {{ opacity: 1 !important; transition: none !important; }}
.bs-root {{
  position: fixed; inset: 0; z-index: 1000; box-sizing: border-box;
  display: flex; flex-direction: column; padding: 2vmin 3vmin 1.5vmin;
  background: {BG}; color: #f5f7fa; line-height: 1.5;
  font-family: "Noto Sans CJK SC", "Noto Sans SC", "Source Sans Pro", "Source Sans 3", sans-serif;
  font-size: 3vmin;
}}
.bs-root * {{ box-sizing: border-box; margin: 0; }}
.bs-top {{
  display: flex; align-items: flex-end; justify-content: space-between; gap: 3vmin;
  height: 12vmin; border-bottom: 0.3vmin solid #2b3440; padding-bottom: 1.2vmin;
}}
.bs-title {{ font-size: 4.4vmin; font-weight: 700; white-space: nowrap; }}
.bs-meta {{ font-size: 2.6vmin; color: #c9d1d9; white-space: nowrap; text-align: right; }}
.bs-stale {{ color: #ffd166; margin-left: 1.5vmin; }}
.bs-clock {{ text-align: right; white-space: nowrap; }}
.bs-time {{ font-size: 4.8vmin; font-weight: 700; display: block; line-height: 1.5; }}
.bs-date {{ font-size: 2.6vmin; color: #c9d1d9; display: block; }}
.bs-slide {{ flex: 1; min-height: 0; padding-top: 2vmin; display: flex; flex-direction: column; }}
.bs-h {{ font-size: 3.6vmin; font-weight: 700; margin-bottom: 1.5vmin; white-space: nowrap; }}
.bs-foot {{
  height: 5vmin; display: flex; gap: 3vmin; align-items: center; justify-content: center;
  font-size: 2.4vmin; color: #aab4c0; white-space: nowrap;
}}
.bs-foot .on {{ color: #f5f7fa; font-weight: 700; }}
.bs-chip {{
  display: inline-block; padding: 0.2vmin 1.2vmin; border-radius: 0.8vmin;
  border: 0.3vmin solid currentColor; white-space: nowrap; font-weight: 700;
}}
.bs-panel {{ background: #151b23; border-radius: 1.2vmin; padding: 1.8vmin 2.4vmin; }}
.bs-company {{ display: flex; gap: 3vmin; flex: 1; min-height: 0; }}
.bs-company .left {{ width: 40%; display: flex; flex-direction: column; gap: 1.6vmin; }}
.bs-company .right {{ flex: 1; display: flex; flex-direction: column; gap: 2vmin; }}
.bs-name {{ font-size: 3.6vmin; font-weight: 700; white-space: normal; }}
.bs-score {{ font-size: 17vmin; font-weight: 800; line-height: 1.5; }}
.bs-big-chip {{ font-size: 4.4vmin; align-self: flex-start; }}
.bs-sub {{ font-size: 3vmin; color: #c9d1d9; }}
.bs-counts {{ display: grid; grid-template-columns: repeat(4, 1fr); gap: 2vmin; }}
.bs-count {{ text-align: center; }}
.bs-count .n {{ font-size: 7.6vmin; font-weight: 800; line-height: 1.5; display: block; }}
.bs-count .l {{ font-size: 3vmin; display: block; white-space: nowrap; }}
.bs-trend {{ display: flex; gap: 2vmin; align-items: flex-end; flex: 1; min-height: 0; }}
.bs-trend .col {{
  flex: 1; display: flex; flex-direction: column; align-items: center; justify-content: flex-end;
  gap: 0.6vmin; height: 100%;
}}
.bs-trend .bar {{ width: 60%; border-radius: 0.6vmin 0.6vmin 0 0; }}
.bs-trend .v {{ font-size: 3vmin; font-weight: 700; white-space: nowrap; }}
.bs-trend .m {{ font-size: 2.4vmin; color: #c9d1d9; white-space: nowrap; }}
.bs-rows {{ display: flex; flex-direction: column; gap: 1.2vmin; }}
.bs-dept {{ display: grid; grid-template-columns: 6vmin 30% 1fr 12vmin 20vmin; gap: 2vmin;
  align-items: center; font-size: 3.6vmin; height: 7.4vmin; }}
.bs-dept .rank {{ color: #c9d1d9; text-align: right; }}
.bs-dept .track {{ height: 3.6vmin; background: #1c2128; border-radius: 0.6vmin; }}
.bs-dept .fill {{ height: 100%; border-radius: 0.6vmin; }}
.bs-dept .num {{ text-align: right; font-weight: 800; }}
.bs-table {{ display: grid; gap: 0.6vmin 2vmin; align-items: center; }}
.bs-risks {{ grid-template-columns: 14% 29% 18% 18% 1fr; column-gap: 1.5vmin; }}
/* "⚠ Forecast miss" on one line in its column, still over 24 px at 1080p: a row as tall in
   English as in Chinese, so seven fit a slide in both. */
.bs-risks .bs-chip {{ font-size: 2.6vmin; }}
.bs-fresh {{ grid-template-columns: 40% 22% 1fr; font-size: 3.4vmin; row-gap: 2vmin; }}
.bs-th {{ font-size: 2.4vmin; color: #c9d1d9; white-space: nowrap; }}
.bs-cell {{ white-space: nowrap; min-width: 0; }}
.bs-cell .main {{ display: block; font-size: 3vmin; font-weight: 700; }}
.bs-cell .minor {{ display: block; font-size: 2.4vmin; color: #c9d1d9; }}
.bs-risks .bs-cell {{ padding: 0.4vmin 0; border-top: 0.2vmin solid #2b3440; }}
.bs-matrix {{ display: flex; flex-direction: column; gap: 2vmin; }}
.bs-mtitle {{ font-size: 3vmin; font-weight: 700; white-space: nowrap; line-height: 1.5;
  margin-bottom: 0.7vmin; }}
.bs-mgrid {{ display: grid; column-gap: 1vmin; row-gap: 1vmin; align-items: center; }}
.bs-mhead {{ font-size: 2.4vmin; color: #c9d1d9; text-align: center;
  white-space: normal; overflow-wrap: normal; word-break: normal; align-self: end;
  text-wrap: balance; }}
.bs-munit {{ font-size: 2.8vmin; white-space: normal; text-wrap: balance; }}
.bs-mcell {{ display: flex; justify-content: center; }}
.bs-none {{ font-size: 2.8vmin; color: #c9d1d9; line-height: 4.4vmin; }}
.bs-glyph {{ font-size: 2.8vmin; width: 4.4vmin; height: 4.4vmin; line-height: 4.4vmin;
  text-align: center; border-radius: 0.6vmin; }}
.bs-mfoot {{ margin-top: auto; display: flex; flex-direction: column; gap: 0.6vmin; }}
.bs-abbr {{ font-size: 2.4vmin; color: #c9d1d9; white-space: normal; line-height: 1.4; }}
.bs-abbr b {{ color: #f5f7fa; }}
.bs-legend {{ margin-top: auto; font-size: 2.4vmin; color: #c9d1d9; display: flex; gap: 3vmin; }}
.bs-message {{ margin: auto; max-width: 80vw; text-align: center; }}
.bs-message h1 {{ font-size: 6vmin; font-weight: 800; margin-bottom: 3vmin; color: #f5f7fa; }}
.bs-message p {{ font-size: 3vmin; color: #c9d1d9; margin-bottom: 2vmin; }}
.bs-message .bs-other {{ margin-top: 4vmin; color: #c9d1d9; }}
</style>
"""


REFUSED = "bs_refused"  # session key: why this wall shows a notice instead of data


_RETRYING = "bs_retrying"


RETRY_EVERY = 30  # seconds between checks while throttled or while the warehouse is busy


def _compute(path: str, codes: tuple[str, ...], asked: tuple[str, ...], lang: str, name: str):
    from kpi_core.ui import _warehouse

    wh = _warehouse(path)
    cat = load_catalog(wh)
    units = screen.kiosk_units(cat, codes, asked)
    return screen.screen_data(wh, cat, units, lang, title=name, today=clock.today())


def snapshot(params: Params, name: str, codes: tuple[str, ...]) -> Snapshot:
    """The data for this screen, refreshed every `params.refresh` seconds (shared by every
    screen showing the same units), the last good data when a refresh fails."""
    path = resolve_path()
    key = (path, name, codes, params.units, params.lang)
    return screen.LAST_GOOD.get(
        key, lambda: _compute(path, codes, params.units, params.lang, name), params.refresh
    )


def _signed_in_scope() -> tuple[str, tuple[str, ...]] | None:
    """(screen name, unit codes) for a user who opened the screen from the sidebar, signed in
    in this session: the wall previewed over their own scope. A wall itself has no session and
    uses a token."""
    wh = _warehouse(resolve_path())  # the pages' own warehouse object
    # The browser's session cookie, checked against the store: a Streamlit session id
    # replayed from another browser does not carry it.
    user_name = signin.signed_in_user(wh)
    if not user_name:
        return None
    try:
        user = load_user(wh, user_name)
    except NotFoundError:
        return None
    cat = load_catalog(wh)
    roots = cat.scope_roots(cat.scope_for(user))
    return user.display_name, tuple(cat.units[u].code for u in roots)


def _client() -> str:
    """The wall's address as the server sees it (None on loopback); what wrong tokens are
    counted by. Behind a proxy every wall has the proxy's address."""
    address = st.context.ip_address
    return address if isinstance(address, str) and address else "local"


def check(token: str | None) -> kiosk.Screen | kiosk.Refusal:
    """The token's screen or why it opens nothing; "busy" while the warehouse cannot be read."""
    try:
        return kiosk.verify(_warehouse(resolve_path()), token, datetime.now(), _client())
    except screen.REFRESH_ERRORS as exc:
        screen.log.warning("kiosk token not checked, trying again later: %s", exc)
        return kiosk.Refusal("busy")


def _show_refusal(token: str | None, lang: str, reason: str) -> None:
    """The notice for `reason`. A throttled or busy wall tries again every RETRY_EVERY seconds
    and comes back by itself; a revoked or unknown token stays refused (no more ticks)."""
    st.session_state[REFUSED] = reason
    if reason not in ("throttled", "busy"):
        st.html(notice(lang, reason))
        return

    @st.fragment(run_every=RETRY_EVERY)
    def waiting() -> None:
        if st.session_state.get(_RETRYING):  # not in the run that has just been refused
            got = check(token)
            if isinstance(got, kiosk.Screen):
                st.session_state.pop(REFUSED, None)
                st.session_state.pop(_RETRYING, None)
                st.rerun(scope="app")
            if got.reason not in ("throttled", "busy"):  # revoked meanwhile: stop trying
                st.session_state[REFUSED] = got.reason
                st.rerun(scope="app")
        st.session_state[_RETRYING] = True
        st.html(notice(lang, st.session_state[REFUSED]))

    waiting()


def main() -> None:
    query = st.query_params
    asked = query.get("lang")
    lang = asked if asked in i18n.LANGS else "zh"
    st.set_page_config(
        page_title=i18n.t("bs_title", lang),
        page_icon=":material/tv:",
        layout="wide",
        initial_sidebar_state="collapsed",
    )
    st.html(CSS)
    # A wall runs unattended: a fault shows a message on it, never a traceback (the fragment's
    # reruns do not pass through this `with`, so it has its own).
    with guard(lang):
        _show_wall(query.get("token"), lang)


def _show_wall(token: str | None, lang: str) -> None:
    mine = None if token else _signed_in_scope()
    if mine is not None:
        params = read_params(st.query_params)
        name, codes = mine
    else:
        # A wall refused once in this session stays refused without being checked again at
        # every rerun (a revoked token would otherwise be looked up — and noted — each time).
        refused = st.session_state.get(REFUSED)
        got = kiosk.Refusal(refused) if refused else check(token)
        if isinstance(got, kiosk.Refusal):
            _show_refusal(token, lang, got.reason)
            return
        params = read_params(st.query_params, got)
        name, codes = got.name, got.units
    # The clock shows minutes and the slide changes every `rotate` seconds: run often enough
    # for both, and never more than the refresh (runs between refreshes read the cache).
    tick = min(params.rotate, params.refresh, 10)

    @st.fragment(run_every=tick)
    def wall() -> None:
        with guard(lang):
            # The token is checked at every tick, so a revoked screen stops at its next one.
            # While the warehouse is busy it cannot be checked; the data cannot be read then
            # either, and the screen keeps what it has, marked stale.
            verdict = check(token) if token else None
            if isinstance(verdict, kiosk.Refusal) and verdict.reason != "busy":
                st.session_state[REFUSED] = "revoked" if verdict.final else verdict.reason
                st.rerun(scope="app")
            if mine is not None and _signed_in_scope() != mine:
                st.rerun()  # the preview's session ended (or its scope changed) since it opened
            snap = snapshot(params, name, codes)
            st.html(render(snap, params, datetime.now(), time.time()))

    wall()
