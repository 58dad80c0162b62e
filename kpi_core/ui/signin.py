"""The sign-in gate every page passes through (`kpi_core.ui.page`).

A script run is signed in only when its own browser's cookie `kpi_session` names a live session
in the warehouse (kpi_core/sessions.py), checked on every run — `st.session_state` grants
nothing. So a reload, a new tab or a link from a push stays signed in; a Streamlit session id
replayed from a browser without the cookie gets the sign-in form; and a session ended anywhere
(sign-out in another tab, sign-out everywhere, time-out, an admin) is ended at the next run of
every tab. (`st.context.cookies` holds the cookies of the tab's WebSocket handshake: a tab keeps
the cookie it connected with until it reloads.)

A script cannot set an HttpOnly cookie, so the sign-in and sign-out forms are plain HTML forms
posting to the app's routes (kpi_core/ui/server.py), which set and clear the cookie. Single
sign-on (`st.login`, when `[auth]` is configured in secrets.toml) ends in the same cookie,
issued on the provider's callback. The wall screen never comes here: it reads with its kiosk
token (kpi_core.screen).
"""

from __future__ import annotations

import html
from datetime import datetime
from urllib.parse import urlencode, urlsplit

import streamlit as st

from kpi_core import auth, i18n, service, sessions, sso, users
from kpi_core.errors import KpiError
from kpi_core.ui import server
from kpi_core.warehouse import Warehouse

# The signed-in user of this run, for the pages' widgets; written by the gate after the cookie
# was checked, never read as proof of anything.
USER = "user_name"
_VIA = "auth_via"


def _cookie() -> str | None:
    value = st.context.cookies.get(sessions.COOKIE)
    return value if isinstance(value, str) else None


def check(wh: Warehouse, rules: auth.Policy, now: datetime) -> sessions.Check:
    """This run's browser's session, checked against the store."""
    value = _cookie()
    if value is None:
        return sessions.Check(None, "none")
    return sessions.check(
        wh, sessions.unsign(value, sessions.key(wh, now=now)), now=now, rules=rules
    )


def signed_in_user(wh: Warehouse) -> str | None:
    """The user this browser's cookie signs in, for a page that has no form of its own (the
    big screen previewed from the sidebar); None when it signs in no one."""
    got = check(wh, auth.policy(), datetime.now())
    return got.session.user if got.ok else None


def gate(wh: Warehouse, lang: str) -> str | None:
    """The signed-in user's name; shows the sign-in form and stops the page when there is none.

    None means the warehouse has no users at all (set up by hand): then everyone has full
    access, and the sidebar says so.
    """
    if not users.anyone(wh):
        return None
    rules = auth.policy()
    flags = {k: st.query_params.get(k) for k in server.FLAGS}
    for k, v in flags.items():
        if v is not None:
            del st.query_params[k]  # said once; not kept in the URL for a reload
    got = check(wh, rules, datetime.now())
    if got.ok:
        st.session_state[USER] = got.session.user
        st.session_state[_VIA] = got.session.via
        return got.session.user
    st.session_state.pop(USER, None)
    st.session_state.pop(_VIA, None)
    _sso_refusal(wh, lang)
    _form(wh, lang, _notice(got.reason, flags, rules, lang), _error(flags, rules, lang))
    st.stop()


def _notice(reason: str, flags: dict, rules: auth.Policy, lang: str) -> str | None:
    if flags.get("si_notice") == "signed_out":
        return i18n.t("si_signed_out", lang)
    if reason == "idle":
        return i18n.t("si_timed_out", lang, minutes=rules.idle_minutes)
    if reason == "expired":
        return i18n.t("si_expired", lang, hours=rules.session_hours)
    if reason in ("revoked", "no_user"):
        return i18n.t("si_ended", lang)
    return None


def _error(flags: dict, rules: auth.Policy, lang: str) -> str | None:
    error = flags.get("si_error")
    if error == "busy":
        return i18n.t("warehouse_busy", lang)
    if error == "setup":
        return i18n.t("si_setup", lang)
    if error:
        return i18n.t("si_wrong", lang, max=rules.max_failures, minutes=rules.lock_minutes)
    return None


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


def _sso_refusal(wh: Warehouse, lang: str) -> None:
    """A browser back from the identity provider whose identity has no user here: why, and a
    way out. (The sign-in, its session cookie and its audit happen on the provider's callback,
    server.SsoSessions; an identity cookie alone signs no one in.)"""
    if not _sso_configured() or not st.user.is_logged_in:
        return
    claims = dict(st.user.to_dict())
    claims.pop("tokens", None)
    try:
        sso.resolve(wh, claims)
    except KpiError as exc:
        st.error(i18n.t("si_sso_refused", lang, reason=exc.text(lang)))
        if st.button(i18n.t("si_sign_out", lang), icon=":material/logout:", key="si_sso_out"):
            st.logout()
        st.stop()


def _here(*, keep_query: bool = True) -> str:
    """This page's path and query (or only its language), for the forms' `next`."""
    path = urlsplit(st.context.url or "").path or "/"
    query = {k: v for k, v in st.query_params.to_dict().items() if k not in server.FLAGS}
    if not keep_query:
        query = {k: v for k, v in query.items() if k == "lang"}
    return path + (f"?{urlencode(query)}" if query else "")


_FORM_CSS = """
<style>
.kpi-auth { display: flex; flex-direction: column; gap: 0.9rem; }
.kpi-auth label { display: flex; flex-direction: column; gap: 0.3rem; font-size: 0.875rem; }
.kpi-auth input {
  font: inherit; padding: 0.55rem 0.75rem; border: 1px solid rgba(49, 51, 63, 0.2);
  border-radius: 0.5rem; background: #f0f2f6; color: inherit;
}
.kpi-auth input:focus { outline: 2px solid #1f5fa8; outline-offset: 0; }
.kpi-auth button {
  font: inherit; padding: 0.5rem 0.75rem; border-radius: 0.5rem; cursor: pointer;
  border: 1px solid #1f5fa8; background: #1f5fa8; color: #fff;
}
.kpi-auth button.kpi-secondary {
  background: transparent; color: inherit; border-color: rgba(49, 51, 63, 0.2);
}
.kpi-auth-row { display: flex; gap: 0.5rem; flex-wrap: wrap; }
.kpi-auth-row button { font-size: 0.875rem; padding: 0.3rem 0.7rem; }
</style>
"""


def _form_html(lang: str) -> str:
    def t(key: str) -> str:
        return html.escape(i18n.t(key, lang))

    action = html.escape(server.url_path(server.SIGN_IN))
    return (
        f'{_FORM_CSS}<form class="kpi-auth" method="post" action="{action}">'
        f'<label>{t("si_name")}<input name="user" autocomplete="username" required '
        f'maxlength="256"></label>'
        f'<label>{t("si_password")}<input name="password" type="password" '
        f'autocomplete="current-password" maxlength="1024"></label>'
        f'<input type="hidden" name="next" value="{html.escape(_here())}">'
        f'<button type="submit">{t("si_submit")}</button></form>'
    )


def _form(wh: Warehouse, lang: str, notice: str | None, error: str | None) -> None:
    def t(key: str, **values: object) -> str:
        return i18n.t(key, lang, **values)

    _, middle, _ = st.columns([1, 2, 1])
    with middle:
        st.title(t("app_title"))
        if notice:
            st.info(notice)
        st.subheader(t("si_title"))
        if error:
            st.error(error)
        st.html(_form_html(lang))
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
        url = f"{there}{server.base_path()}/?{urlencode({'sso': '1', 'lang': lang})}"
        st.link_button(label, url, icon=":material/key:", width="stretch")
    elif st.button(label, icon=":material/key:", width="stretch", key="si_sso"):
        st.login()


def _demo_users(wh: Warehouse) -> list[tuple[str, str, str]]:
    # Four scrypt checks: done once per session, not on every run of the form.
    if "si_demo" not in st.session_state:
        st.session_state["si_demo"] = auth.demo_sign_ins(wh, service.DEMO_USERS)
    return st.session_state["si_demo"]


def sign_out_button(wh: Warehouse, name: str, lang: str) -> None:
    """Sign out (this browser) and sign out everywhere (every browser of this user): a form
    posting to the sign-out route, which ends the session and clears the cookie."""

    def t(key: str) -> str:
        return html.escape(i18n.t(key, lang))

    st.session_state.pop("si_demo", None)  # the form may list other users once signed out
    action = html.escape(server.url_path(server.SIGN_OUT))
    st.html(
        f'{_FORM_CSS}<form class="kpi-auth" method="post" action="{action}">'
        f'<input type="hidden" name="next" value="{html.escape(_here(keep_query=False))}">'
        f'<div class="kpi-auth-row"><button type="submit" name="scope" value="this">'
        f"{t('si_sign_out')}</button>"
        f'<button type="submit" name="scope" value="all" class="kpi-secondary">'
        f"{t('si_sign_out_everywhere')}</button></div></form>"
    )
