"""A small real OpenID Connect provider on 127.0.0.1 for single sign-on tests.

It speaks the authorization-code flow the way Streamlit's `st.login` (Authlib) uses it: discovery
(`/.well-known/openid-configuration`), `/authorize` (approves at once, as the identity set on
the provider object, and redirects back with a code and the state), `/token` (client secret,
PKCE S256, the code once; answers an RS256-signed id_token carrying the nonce, and an access
token), `/jwks`, `/userinfo` and `/logout` (RP-initiated logout, back to the app).

    idp = OidcProvider(client_id="kpi", client_secret="s3cret")
    idp.identity = {"email": "wang.lei@example.com", "name": "Wang Lei", "groups": ["sales"]}
    ... the app's [auth] server_metadata_url = idp.discovery_url ...
    idp.stop()

Every request is recorded in `idp.requests` (path and query/form) so a test can check what the
app asked for.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlencode, urlsplit

from joserfc import jwt
from joserfc.jwk import RSAKey

_CODE_TTL = 120  # seconds a code may wait to be exchanged
_TOKEN_TTL = 3600


class OidcProvider:
    def __init__(self, client_id: str = "kpi-monitor", client_secret: str = "s3cret") -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        # Whoever "signs in" at the provider next: claims copied into the id_token and userinfo.
        self.identity: dict = {"email": "someone@example.com", "name": "Someone"}
        self.requests: list[dict] = []
        self.logouts = 0
        self._lock = threading.Lock()
        self._codes: dict[str, dict] = {}
        self._access: dict[str, dict] = {}
        self._key = RSAKey.generate_key(2048, parameters={"kid": "test-1", "use": "sig"})
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                outer._handle(self, "GET")

            def do_POST(self):
                outer._handle(self, "POST")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.block_on_close = False
        self.port = self.server.server_address[1]
        self.issuer = f"http://127.0.0.1:{self.port}"
        self.discovery_url = f"{self.issuer}/.well-known/openid-configuration"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)

    def __enter__(self) -> OidcProvider:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    # --- the endpoints ---------------------------------------------------------------------

    def metadata(self) -> dict:
        i = self.issuer
        return {
            "issuer": i,
            "authorization_endpoint": f"{i}/authorize",
            "token_endpoint": f"{i}/token",
            "userinfo_endpoint": f"{i}/userinfo",
            "jwks_uri": f"{i}/jwks",
            "end_session_endpoint": f"{i}/logout",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "scopes_supported": ["openid", "email", "profile"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "code_challenge_methods_supported": ["S256"],
            "claims_supported": ["sub", "email", "name", "groups"],
        }

    def _handle(self, h: BaseHTTPRequestHandler, method: str) -> None:
        parts = urlsplit(h.path)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        form: dict[str, str] = {}
        if method == "POST":
            body = h.rfile.read(int(h.headers.get("Content-Length") or 0)).decode()
            form = {k: v[0] for k, v in parse_qs(body).items()}
        with self._lock:
            self.requests.append(
                {"method": method, "path": parts.path, "query": query, "form": form}
            )
        route = {
            ("GET", "/.well-known/openid-configuration"): lambda: (200, self.metadata()),
            ("GET", "/jwks"): lambda: (200, {"keys": [self._key.as_dict(private=False)]}),
            ("GET", "/authorize"): lambda: self._authorize(query),
            ("POST", "/token"): lambda: self._token(form, h.headers.get("Authorization", "")),
            ("GET", "/userinfo"): lambda: self._userinfo(h.headers.get("Authorization", "")),
            ("GET", "/logout"): lambda: self._logout(query),
        }.get((method, parts.path))
        status, answer = route() if route else (404, {"error": "not_found"})
        try:
            if status in (302, 303):
                h.send_response(status)
                h.send_header("Location", answer)
                h.send_header("Content-Length", "0")
                h.end_headers()
                return
            data = json.dumps(answer).encode()
            h.send_response(status)
            h.send_header("Content-Type", "application/json")
            h.send_header("Cache-Control", "no-store")
            h.send_header("Content-Length", str(len(data)))
            h.end_headers()
            h.wfile.write(data)
        except OSError:
            pass

    def _authorize(self, q: dict) -> tuple[int, object]:
        if q.get("client_id") != self.client_id:
            return 400, {"error": "unauthorized_client"}
        if q.get("response_type") != "code" or "openid" not in q.get("scope", "").split():
            return 400, {"error": "invalid_request"}
        redirect_uri = q.get("redirect_uri")
        if not redirect_uri:
            return 400, {"error": "invalid_request", "error_description": "no redirect_uri"}
        code = secrets.token_urlsafe(24)
        with self._lock:
            self._codes[code] = {
                "redirect_uri": redirect_uri,
                "nonce": q.get("nonce"),
                "challenge": q.get("code_challenge"),
                "method": q.get("code_challenge_method"),
                "identity": dict(self.identity),
                "at": time.time(),
            }
        back = {"code": code}
        if "state" in q:
            back["state"] = q["state"]
        sep = "&" if "?" in redirect_uri else "?"
        return 302, f"{redirect_uri}{sep}{urlencode(back)}"

    def _client_ok(self, form: dict, authorization: str) -> bool:
        if authorization.startswith("Basic "):
            raw = base64.b64decode(authorization[6:]).decode()
            cid, _, secret = raw.partition(":")
            return (unquote(cid), unquote(secret)) == (self.client_id, self.client_secret)
        return (form.get("client_id"), form.get("client_secret")) == (
            self.client_id,
            self.client_secret,
        )

    def _token(self, form: dict, authorization: str) -> tuple[int, object]:
        if not self._client_ok(form, authorization):
            return 401, {"error": "invalid_client"}
        if form.get("grant_type") != "authorization_code":
            return 400, {"error": "unsupported_grant_type"}
        with self._lock:
            grant = self._codes.pop(form.get("code", ""), None)  # a code works once
        if grant is None or time.time() - grant["at"] > _CODE_TTL:
            return 400, {"error": "invalid_grant"}
        if form.get("redirect_uri") != grant["redirect_uri"]:
            return 400, {"error": "invalid_grant", "error_description": "redirect_uri differs"}
        if grant["challenge"]:
            verifier = form.get("code_verifier", "")
            digest = hashlib.sha256(verifier.encode()).digest()
            expected = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
            if grant["method"] != "S256" or expected != grant["challenge"]:
                return 400, {"error": "invalid_grant", "error_description": "PKCE failed"}
        identity = grant["identity"]
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "sub": identity.get("sub") or identity.get("email") or "anonymous",
            "aud": self.client_id,
            "iat": now,
            "exp": now + _TOKEN_TTL,
            "auth_time": now,
            **{k: v for k, v in identity.items() if k != "sub"},
        }
        if grant["nonce"]:
            claims["nonce"] = grant["nonce"]
        id_token = jwt.encode({"alg": "RS256", "kid": "test-1"}, claims, self._key)
        access = secrets.token_urlsafe(24)
        with self._lock:
            self._access[access] = claims
        return 200, {
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": _TOKEN_TTL,
            "id_token": id_token,
            "scope": "openid email profile",
        }

    def _userinfo(self, authorization: str) -> tuple[int, object]:
        token = authorization[7:] if authorization.startswith("Bearer ") else ""
        with self._lock:
            claims = self._access.get(token)
        if claims is None:
            return 401, {"error": "invalid_token"}
        drop = {"iss", "aud", "iat", "exp", "auth_time", "nonce"}
        return 200, {k: v for k, v in claims.items() if k not in drop}

    def _logout(self, q: dict) -> tuple[int, object]:
        with self._lock:
            self.logouts += 1
        target = q.get("post_logout_redirect_uri")
        if not target:
            return 200, {"logged_out": True}
        if "state" in q:
            target += ("&" if "?" in target else "?") + urlencode({"state": q["state"]})
        return 302, target
