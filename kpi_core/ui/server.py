"""The app's own web server: the sign-in and sign-out routes and the single sign-on hand-over,
mounted on Streamlit's server by `st.App` in app.py (`streamlit run app.py` serves it).

- `POST /auth/signin` (form: user, password, next) checks the password with `auth.sign_in`
  (lock-out included), creates a session (kpi_core/sessions.py) and sets the cookie
  `kpi_session`: signed, HttpOnly, SameSite=Lax, Path=/ (or the base URL path), Secure when
  served over https. It answers 303 to `next` — only a path on this server, never another
  site — with `si_error=wrong` added when the sign-in failed, whatever the reason.
- `POST /auth/signout` (form: next, scope=this|all) ends this session, or all of the user's
  sessions, and clears the cookie; a single sign-on session goes on to Streamlit's
  `/auth/logout`, which ends the identity provider's session too.
- Both refuse a POST that does not come from a page of this server (its Origin, or failing
  that its Referer, must name this host): another site cannot sign a browser in or out.
  SameSite=Lax keeps the cookie off cross-site POSTs as well.
- Single sign-on ends in the same cookie: on the response of Streamlit's OpenID Connect
  callback (`/oauth2callback`), which sets Streamlit's identity cookie, `SsoSessions` maps
  the identity to a user (kpi_core/sso.py) and adds the session cookie. Only that callback
  issues one, so a session ended by sign-out, time-out or an admin is not brought back by
  the identity cookie left in the browser: the user goes through the provider again.
- `hide_session_ids` keeps Streamlit session ids out of the log (Streamlit writes them at
  WARNING when a session id is presented twice, and file-upload URLs hold them).

What the browser can still see of a Streamlit session id (the WebSocket subprotocol list,
`/_stcore/upload_file/<session id>/…` upload URLs) is Streamlit's own scheme; it grants
nothing here, since every script run checks the cookie of its own browser (signin.gate).
"""

from __future__ import annotations

import json
import logging
import re
from datetime import datetime
from http.cookies import CookieError, SimpleCookie
from urllib.parse import parse_qsl, urlencode, urlsplit

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import MutableHeaders
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kpi_core import auth, sessions, sso, users
from kpi_core.errors import KpiError, WarehouseBusyError
from kpi_core.warehouse import Warehouse, resolve_path

SIGN_IN = "auth/signin"
SIGN_OUT = "auth/signout"
STREAMLIT_LOGOUT = "auth/logout"  # Streamlit's: clears its identity cookie, provider logout
OIDC_CALLBACK = "oauth2callback"  # Streamlit's
# Query parameters the routes add to `next`, read (and removed) by the sign-in gate.
FLAGS = ("si_error", "si_notice")

_MAX_FORM = 16 * 1024  # a sign-in form is a few hundred bytes
_MAX_NEXT = 2048
_log = logging.getLogger(__name__)


def base_path() -> str:
    """'' or '/base' for `server.baseUrlPath`."""
    from streamlit import config

    base = (config.get_option("server.baseUrlPath") or "").strip("/")
    return f"/{base}" if base else ""


def url_path(route: str) -> str:
    return f"{base_path()}/{route}"


def safe_next(value: object) -> str:
    """Where to send the browser after signing in or out: `value` when it is a path on this
    server ('/Board?unit=SALES'), else '/'. Refuses other sites in every spelling a browser
    would follow: 'https://x', '//x', '/\\x', '\\\\x', 'javascript:…', control characters."""
    home = base_path() + "/"
    if not isinstance(value, str) or not value or len(value) > _MAX_NEXT:
        return home
    if not value.startswith("/") or value.startswith("//") or "\\" in value:
        return home
    if any(ord(c) < 0x21 or ord(c) == 0x7F for c in value):
        return home
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return home
    return value


def with_flags(target: str, **flags: str) -> str:
    """`target` with the routes' flags replaced by `flags` in its query."""
    parts = urlsplit(target)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in FLAGS]
    query += [(k, v) for k, v in flags.items() if v]
    return parts.path + (f"?{urlencode(query)}" if query else "")


def _origin_netloc(url: str) -> str | None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    netloc = parts.netloc.lower()
    default = {"http": ":80", "https": ":443"}[parts.scheme]
    return netloc.removesuffix(default)


def same_origin(request: Request) -> bool:
    """True when the form was posted by a page of this server: its Origin (or, for a browser
    that sends none, its Referer) names the Host it was sent to — or the X-Forwarded-Host a
    reverse proxy sets (a cross-site form cannot set headers). Neither header: refused."""
    sent = request.headers.get("origin")
    if sent is None or sent == "null":
        sent = request.headers.get("referer")
    came_from = _origin_netloc(sent or "")
    if came_from is None:
        return False
    hosts = {request.headers.get("host"), request.headers.get("x-forwarded-host")}
    return any(h and came_from == h.lower().removesuffix(":80").removesuffix(":443") for h in hosts)


def _https(scope: Scope) -> bool:
    from streamlit import config

    return scope.get("scheme") in ("https", "wss") or bool(config.get_option("server.sslCertFile"))


def _set_cookie(response: Response, value: str, rules: auth.Policy, https: bool) -> None:
    response.set_cookie(
        sessions.COOKIE,
        value,
        max_age=rules.session_hours * 3600,
        path=base_path() or "/",
        httponly=True,
        samesite="lax",
        secure=https,
    )


def _clear_cookie(response: Response, https: bool) -> None:
    response.delete_cookie(
        sessions.COOKIE, path=base_path() or "/", httponly=True, samesite="lax", secure=https
    )


def _warehouse() -> Warehouse:
    # The pages' own warehouse object: one per process, so writes stay serialised.
    from kpi_core.ui import shared_warehouse

    return shared_warehouse(resolve_path())


def _refused() -> Response:
    return PlainTextResponse(
        "请从 KPI Monitor 的页面登录或退出。\n"
        "Sign in and out from a page of KPI Monitor: this request came from another site.",
        status_code=403,
    )


async def _form(request: Request) -> dict[str, str] | None:
    """The posted form's fields, or None when the body is too large to be a sign-in form."""
    try:
        size = int(request.headers.get("content-length") or 0)
    except ValueError:
        return None
    if size > _MAX_FORM:
        return None
    form = await request.form(max_files=0, max_fields=10)
    return {k: v for k, v in form.items() if isinstance(v, str)}


async def sign_in(request: Request) -> Response:
    if not same_origin(request):
        return _refused()
    form = await _form(request)
    if form is None:
        return PlainTextResponse("The form is too large.", status_code=413)
    name = form.get("user", "")[:256]
    password = form.get("password", "")[:1024]
    target = safe_next(form.get("next"))
    previous = request.cookies.get(sessions.COOKIE)

    def work() -> tuple[auth.Outcome, str | None, auth.Policy]:
        wh = _warehouse()
        rules = auth.policy()
        now = datetime.now()
        outcome = auth.sign_in(wh, name, password, rules=rules, now=now)
        if not outcome.ok:
            return outcome, None, rules
        key = sessions.key(wh, now=now)
        if previous:  # the browser's cookie is replaced: its session ends with it
            sessions.revoke(wh, sessions.unsign(previous, key), now=now, why="replaced")
        session_id = sessions.create(wh, outcome.user, now=now, rules=rules)
        return outcome, sessions.sign(session_id, key), rules

    try:
        outcome, value, rules = await run_in_threadpool(work)
    except WarehouseBusyError:
        return RedirectResponse(with_flags(target, si_error="busy"), status_code=303)
    except KpiError as exc:  # the [sign_in] settings cannot be used: the admin must fix them
        _log.error("sign-in refused: %s", exc)
        return RedirectResponse(with_flags(target, si_error="setup"), status_code=303)
    if value is None:
        # One answer for a wrong name, a wrong password and a locked user (auth.Outcome).
        return RedirectResponse(with_flags(target, si_error="wrong"), status_code=303)
    response = RedirectResponse(with_flags(target), status_code=303)
    _set_cookie(response, value, rules, _https(request.scope))
    return response


async def sign_out(request: Request) -> Response:
    if not same_origin(request):
        return _refused()
    form = await _form(request) or {}
    target = safe_next(form.get("next"))
    everywhere = form.get("scope") == "all"
    cookie = request.cookies.get(sessions.COOKIE)

    def work() -> sessions.Session | None:
        wh = _warehouse()
        now = datetime.now()
        ended = sessions.revoke(wh, sessions.unsign(cookie, sessions.key(wh, now=now)), now=now)
        if ended is not None and everywhere:
            sessions.revoke_user(wh, ended.user, now=now, by=ended.user)
        return ended

    try:
        ended = await run_in_threadpool(work) if cookie else None
    except KpiError:
        ended = None  # the cookie is cleared all the same
    if ended is not None and ended.via == "sso":
        location = url_path(STREAMLIT_LOGOUT)
    else:
        location = with_flags(target, si_notice="signed_out")
    response = RedirectResponse(location, status_code=303)
    _clear_cookie(response, _https(request.scope))
    return response


def routes() -> list[Route]:
    return [
        Route(url_path(SIGN_IN), sign_in, methods=["POST"]),
        Route(url_path(SIGN_OUT), sign_out, methods=["POST"]),
    ]


# Single sign-on.


def _identity(set_cookies: list[str]) -> dict | None:
    """The claims in the Streamlit identity cookie a response sets, checked the way Streamlit
    checks it (signature with its cookie secret, origin of the redirect_uri); None if none."""
    from streamlit.auth_util import get_cookie_with_chunks, get_origin_from_redirect_uri
    from streamlit.web.server.server_util import get_cookie_secret
    from streamlit.web.server.starlette.starlette_app_utils import decode_signed_value
    from streamlit.web.server.starlette.starlette_server_config import USER_COOKIE_NAME

    jar: dict[str, str] = {}
    for header in set_cookies:
        cookie: SimpleCookie = SimpleCookie()
        try:
            cookie.load(header)
        except CookieError:
            continue
        for name, morsel in cookie.items():
            if morsel.value and morsel["max-age"] != "0":
                jar[name] = morsel.value
    if USER_COOKIE_NAME not in jar:
        return None
    secret = get_cookie_secret()

    def one(name: str) -> bytes | None:
        raw = jar.get(name)
        return None if raw is None else decode_signed_value(secret, name, raw.encode("latin-1"))

    try:
        payload = json.loads(get_cookie_with_chunks(one, USER_COOKIE_NAME) or b"null")
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(payload, dict) or not payload.get("is_logged_in"):
        return None
    if payload.get("origin") != get_origin_from_redirect_uri():
        return None
    return {k: v for k, v in payload.items() if k not in ("origin", "is_logged_in", "provider")}


def _session_for_identity(claims: dict, https: bool) -> str | None:
    """A Set-Cookie header value with a new session for the identity's user; None (audited)
    when the identity maps to no user."""
    wh = _warehouse()
    if not users.anyone(wh):
        return None  # no users: no sign-in at all (signin.gate)
    try:
        name = sso.resolve(wh, claims)
    except KpiError as exc:
        who = str(claims.get("email") or claims.get("sub") or "(no e-mail)")
        auth.record(wh, who, "failed", f"sso: {exc}"[:500])
        return None
    rules = auth.policy()
    now = datetime.now()
    auth.record(wh, name, "signed_in", "sso")
    value = sessions.sign(
        sessions.create(wh, name, now=now, rules=rules, via="sso"), sessions.key(wh, now=now)
    )
    carrier = Response()
    _set_cookie(carrier, value, rules, https)
    return carrier.headers["set-cookie"]


class SsoSessions:
    """ASGI middleware: adds the session cookie to the response of Streamlit's OpenID Connect
    callback when that response signs an identity in."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != url_path(OIDC_CALLBACK):
            await self.app(scope, receive, send)
            return

        async def send_with_session(message: Message) -> None:
            if message["type"] == "http.response.start" and 300 <= message["status"] < 400:
                headers = MutableHeaders(scope=message)
                claims = _identity(headers.getlist("set-cookie"))
                if claims is not None:
                    try:
                        cookie = await run_in_threadpool(
                            _session_for_identity, claims, _https(scope)
                        )
                    except KpiError as exc:
                        _log.error("single sign-on: no session issued: %s", exc)
                        cookie = None
                    if cookie:
                        headers.append("set-cookie", cookie)
            await send(message)

        await self.app(scope, receive, send_with_session)


def middleware() -> list[Middleware]:
    return [Middleware(SsoSessions)]


# Session ids out of the log.

_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_HIDDEN = "<id hidden>"


def _hide(value: object) -> object:
    return _UUID.sub(_HIDDEN, value) if isinstance(value, str) else value


def hide_session_ids() -> None:
    """Mask UUIDs — Streamlit's session ids, and the upload URLs that hold them — in every log
    record of this process, whichever logger or handler writes it. Installed once."""
    previous = logging.getLogRecordFactory()
    if getattr(previous, "hides_session_ids", False):
        return

    def factory(*args, **kwargs) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        record.msg = _hide(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(_hide(a) for a in record.args)
        elif isinstance(record.args, dict):
            record.args = {k: _hide(v) for k, v in record.args.items()}
        return record

    factory.hides_session_ids = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)
