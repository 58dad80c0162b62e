"""The sign-in gate every page passes through (`kpi_core.ui.page`).

A session is signed in when `st.session_state["user_name"]` names a user: set here by the
password form or by single sign-on (`st.login`, when `[auth]` is configured in secrets.toml).
A browser reload starts a new Streamlit session, so it asks again — except with single sign-on,
whose identity cookie survives reloads. The wall screen never comes here: it reads with its
kiosk token (kpi_core.screen).
"""

from __future__ import annotations

import time
from urllib.parse import urlencode, urlsplit

import streamlit as st

from kpi_core import auth, i18n, service, sso
from kpi_core.errors import KpiError
from kpi_core.warehouse import Warehouse

USER = "user_name"
_SEEN = "auth_seen"
_VIA = "auth_via"
_REFUSED = "auth_sso_refused"


def gate(wh: Warehouse, lang: str) -> str | None:
    """The signed-in user's name; shows the sign-in form and stops the page when there is none.

    None means the warehouse has no users at all (set up by hand): then everyone has full
    access, and the sidebar says so.
    """
    if wh.one("SELECT count(*) FROM app_user")[0] == 0:
        return None
    rules = auth.policy()
    now = time.time()
    name = st.session_state.get(USER)
    if name and wh.one("SELECT 1 FROM app_user WHERE name = ?", [name]) is None:
        _forget()  # deleted by an admin meanwhile: this session ends with the user
        name = None
    if name and auth.idle_expired(st.session_state.get(_SEEN, now), now, rules):
        auth.record(wh, name, "timed_out", f"idle over {rules.idle_minutes} min")
        via = st.session_state.get(_VIA)
        _forget()
        st.session_state["auth_notice"] = i18n.t("si_timed_out", lang, minutes=rules.idle_minutes)
        if via == "sso":
            st.logout()  # else the provider's cookie would sign the session straight back in
        name = None
    if not name:
        name = _single_sign_on(wh, lang)
    if not name:
        _form(wh, lang, rules)
        st.stop()
    st.session_state[_SEEN] = now
    return name


def _forget() -> None:
    for key in (USER, _SEEN, _VIA):
        st.session_state.pop(key, None)


def _sso_configured() -> bool:
    try:
        return "auth" in st.secrets
    except Exception:  # no secrets file at all (FileNotFoundError or a parse error): no SSO
        return False


def _origin(url: str | None) -> str | None:
    parts = urlsplit(url or "")
    return f"{parts.scheme}://{parts.netloc}".lower() if parts.scheme and parts.netloc else None


def _sso_origin() -> str | None:
    """Where single sign-on must start: the origin of `[auth] redirect_uri`. The provider sends
    the browser back there and Streamlit's identity cookie is kept for that host only, so a
    sign-in started from another name of the same server (127.0.0.1 for localhost) would not
    complete."""
    try:
        uri = str(st.secrets["auth"].get("redirect_uri") or "")
    except Exception:
        return None
    return _origin(uri.replace("{port}", str(st.get_option("server.port"))))


def _single_sign_on(wh: Warehouse, lang: str) -> str | None:
    """The user an identity-provider sign-in maps to (once per session, audited)."""
    if not _sso_configured() or not st.user.is_logged_in:
        return None
    claims = dict(st.user.to_dict())
    claims.pop("tokens", None)
    try:
        name = sso.resolve(wh, claims)
    except KpiError as exc:
        reason = str(exc)
        if st.session_state.get(_REFUSED) != reason:  # audited once, not on every rerun
            st.session_state[_REFUSED] = reason
            who = str(claims.get("email") or claims.get("sub") or "(no e-mail)")
            auth.record(wh, who, "failed", f"sso: {reason}"[:500])
        st.error(i18n.t("si_sso_refused", lang, reason=reason))
        if st.button(i18n.t("si_sign_out", lang), icon=":material/logout:", key="si_sso_out"):
            st.session_state.pop(_REFUSED, None)
            st.logout()
        st.stop()
    st.session_state.pop(_REFUSED, None)
    st.session_state[USER] = name
    st.session_state[_VIA] = "sso"
    auth.record(wh, name, "signed_in", "sso")
    return name


def _form(wh: Warehouse, lang: str, rules: auth.Policy) -> None:
    def t(key: str, **values: object) -> str:
        return i18n.t(key, lang, **values)

    _, middle, _ = st.columns([1, 2, 1])
    with middle:
        st.title(t("app_title"))
        if notice := st.session_state.pop("auth_notice", None):
            st.info(notice)
        with st.form("si_form"):
            st.subheader(t("si_title"))
            name = st.text_input(t("si_name"), key="si_name", autocomplete="username")
            password = st.text_input(
                t("si_password"), type="password", key="si_password",
                autocomplete="current-password",
            )  # fmt: skip
            sent = st.form_submit_button(t("si_submit"), type="primary", width="stretch")
        if sent:
            outcome = auth.sign_in(wh, name, password, rules=rules)
            if outcome.ok:
                st.session_state[USER] = outcome.user
                st.session_state[_SEEN] = time.time()
                st.session_state[_VIA] = "password"
                st.rerun()
            st.error(t("si_wrong", max=rules.max_failures, minutes=rules.lock_minutes))
        if _sso_configured():
            st.divider()
            _sso_button(lang, t("si_sso"))
        demo = _demo_users(wh)
        if demo:
            with st.expander(t("si_demo_title"), expanded=True):
                st.caption(t("si_demo_hint"))
                st.table(
                    {
                        t("si_name"): [d[0] for d in demo],
                        t("si_password"): [d[1] for d in demo],
                        t("ad_role"): [t(f"role_{d[2]}") for d in demo],
                    }
                )


def _sso_button(lang: str, label: str) -> None:
    """Starts `st.login`. Opened under another host name than the redirect_uri's, it is a link
    to the app under that name, which then starts the sign-in at once (`?sso=1`)."""
    if st.query_params.get("sso") == "1":
        del st.query_params["sso"]
        st.login()
    here, there = _origin(st.context.url), _sso_origin()
    if here and there and here != there:
        base = "/" + st.get_option("server.baseUrlPath").strip("/")
        url = f"{there}{base.rstrip('/')}/?{urlencode({'sso': '1', 'lang': lang})}"
        st.link_button(label, url, icon=":material/key:", width="stretch")
    elif st.button(label, icon=":material/key:", width="stretch", key="si_sso"):
        st.login()


def _demo_users(wh: Warehouse) -> list[tuple[str, str, str]]:
    # Four scrypt checks: done once per session, not on every run of the form.
    if "si_demo" not in st.session_state:
        st.session_state["si_demo"] = auth.demo_sign_ins(wh, service.DEMO_USERS)
    return st.session_state["si_demo"]


def sign_out_button(wh: Warehouse, name: str, lang: str) -> None:
    if st.button(i18n.t("si_sign_out", lang), icon=":material/logout:", key="si_sign_out"):
        via = st.session_state.get(_VIA)
        auth.record(wh, name, "signed_out", via)
        _forget()
        st.session_state.pop("si_demo", None)
        st.session_state["auth_notice"] = i18n.t("si_signed_out", lang)
        if via == "sso":
            # The browser is sent through the provider's logout and back; a rerun here could
            # drop that redirect before it reaches the browser.
            st.logout()
            st.stop()
        st.rerun()
