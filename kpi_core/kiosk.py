"""Kiosk screens (DESIGN.md §7): wall screens an admin creates, each signing in with a token.

A screen has a name, the units it shows (each with its subtree), its slides, rotation, refresh
and language. Its token is `secrets.token_urlsafe(32)` (256 random bits), handed out once by
`create` inside the screen's URL; the warehouse keeps only its SHA-256, so neither the table, a
backup nor the audit log can give it back. `revoke` ends a screen; the open wall checks its
token at every tick (`verify`) and stops showing data at the next one.

Wrong tokens are guesses until proved otherwise: each is audited (a short prefix of its hash,
never the token) and counted per client address and overall. Past `Throttle`'s limits a token
is refused without being looked up — except a token that proved good a moment ago, so running
walls keep working while somebody hammers the URL. The counts live in this process's memory
(one app server per warehouse); a restart forgets them.

Every function takes `now`: only the page asks the clock.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import threading
from collections import OrderedDict, deque
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from kpi_core import audit
from kpi_core.access import Actor, can
from kpi_core.errors import KpiError, ScopeError
from kpi_core.messages import Items, Message
from kpi_core.texts import N_
from kpi_core.warehouse import Warehouse

SLIDES = ("company", "departments", "risks", "matrix", "freshness")
LANGS = ("zh", "en")
MIN_ROTATE, MAX_SECONDS = 5, 3600
MIN_REFRESH = 10
MAX_NAME = 64

# What `create` hands out: 32 random bytes, URL-safe base64 without padding — 43 characters.
TOKEN_BYTES = 32
TOKEN = re.compile(r"[A-Za-z0-9_-]{43}")
# A random 43-character token shows about 31 different characters (21 was the fewest in 200,000
# draws); fewer than this is typed, not drawn, and is refused before any look-up.
MIN_DISTINCT = 16
# last_seen_at is written at most this often per screen: a wall ticks every few seconds.
SEEN_EVERY = timedelta(seconds=60)
# A screen whose revoked token keeps coming back is noted in the audit log this often.
REVOKED_NOTE_EVERY = timedelta(minutes=10)
# How long a token that just proved good passes a throttle (a wall re-checks every ≤10 s).
GOOD_FOR = timedelta(minutes=2)
HASH_PREFIX = 8  # hex digits of a wrong token's hash kept in the audit log
_CLIENT_IN_LOG = 64


class KioskError(KpiError):
    """A kiosk screen's settings were refused, or its units are gone; the message says which."""


@dataclass(frozen=True)
class Screen:
    id: int
    name: str
    units: tuple[str, ...]
    slides: tuple[str, ...]
    rotate: int
    refresh: int
    lang: str
    created_by: str | None
    created_at: datetime
    revoked_by: str | None = None
    revoked_at: datetime | None = None
    last_seen_at: datetime | None = None
    last_seen_from: str | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


@dataclass(frozen=True)
class Created:
    """A new screen and its token — the only time the token exists outside the wall's URL."""

    screen: Screen
    token: str

    def __repr__(self) -> str:  # a log line or a traceback never shows the token
        return f"Created(screen={self.screen!r}, token='…')"


@dataclass(frozen=True)
class Refusal:
    """Why a token opens nothing: missing, malformed (short, odd characters, low entropy),
    unknown, revoked, or throttled (refused without being looked up)."""

    reason: str

    @property
    def final(self) -> bool:
        """True when trying again cannot help: only a throttle runs out by itself."""
        return self.reason != "throttled"


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def well_formed(token: str) -> bool:
    """The shape of a token `create` hands out; anything else was never issued."""
    return bool(TOKEN.fullmatch(token)) and len(set(token)) >= MIN_DISTINCT


def new_token() -> str:
    for _ in range(100):  # one draw in billions misses MIN_DISTINCT; never hand that one out
        token = secrets.token_urlsafe(TOKEN_BYTES)
        if well_formed(token):
            return token
    raise KioskError(Message("ks_err_token"))  # pragma: no cover


# --- throttling wrong tokens --------------------------------------------------------------------


class Throttle:
    """Wrong tokens per client address and overall within `window`; past a limit, that client
    (or everybody) is refused without a look-up for `block`. Bounded in memory: at most
    `max_clients` addresses are remembered, the least recent dropped first."""

    def __init__(
        self,
        per_client: int = 10,
        overall: int = 50,
        window: timedelta = timedelta(minutes=1),
        block: timedelta = timedelta(minutes=5),
        max_clients: int = 4096,
    ):
        self.per_client = per_client
        self.overall = overall
        self.window = window
        self.block = block
        self.max_clients = max_clients
        self._lock = threading.Lock()
        self._wrong: OrderedDict[str, deque[datetime]] = OrderedDict()
        self._all: deque[datetime] = deque(maxlen=overall)
        self._blocked: OrderedDict[str, datetime] = OrderedDict()
        self._all_blocked_until: datetime | None = None
        self._good: OrderedDict[str, datetime] = OrderedDict()
        self._revoked_noted: OrderedDict[str, datetime] = OrderedDict()

    def blocked(self, client: str, now: datetime) -> bool:
        with self._lock:
            until = self._blocked.get(client)
            if until is not None and until <= now:
                del self._blocked[client]
                until = None
            if self._all_blocked_until is not None and self._all_blocked_until <= now:
                self._all_blocked_until = None
            return until is not None or self._all_blocked_until is not None

    def wrong(self, client: str, now: datetime) -> list[str]:
        """Count a wrong token; returns who became blocked by it ("client", "everyone")."""
        started = []
        with self._lock:
            mine = self._wrong.pop(client, None) or deque(maxlen=self.per_client)
            mine.append(now)
            self._wrong[client] = mine
            while len(self._wrong) > self.max_clients:
                self._wrong.popitem(last=False)
            self._all.append(now)
            if len(mine) == self.per_client and now - mine[0] < self.window:
                self._blocked[client] = now + self.block
                while len(self._blocked) > self.max_clients:
                    self._blocked.popitem(last=False)
                mine.clear()
                started.append("client")
            if len(self._all) == self.overall and now - self._all[0] < self.window:
                self._all_blocked_until = now + self.block
                self._all.clear()
                started.append("everyone")
        return started

    def good(self, digest: str, now: datetime) -> None:
        with self._lock:
            self._good.pop(digest, None)
            self._good[digest] = now
            while len(self._good) > self.max_clients:
                self._good.popitem(last=False)

    def recently_good(self, digest: str, now: datetime) -> bool:
        with self._lock:
            seen = self._good.get(digest)
            return seen is not None and now - seen < GOOD_FOR

    def forget(self, digest: str) -> None:
        with self._lock:
            self._good.pop(digest, None)

    def note_revoked(self, digest: str, now: datetime) -> bool:
        """True when a revoked token's return is worth an audit row (not every tick)."""
        with self._lock:
            last = self._revoked_noted.get(digest)
            if last is not None and now - last < REVOKED_NOTE_EVERY:
                return False
            self._revoked_noted.pop(digest, None)
            self._revoked_noted[digest] = now
            while len(self._revoked_noted) > self.max_clients:
                self._revoked_noted.popitem(last=False)
            return True


_THROTTLES: dict[str, Throttle] = {}
_THROTTLES_LOCK = threading.Lock()


def throttle_for(wh: Warehouse) -> Throttle:
    """The throttle of this warehouse's screens in this process (one per warehouse file, so
    a second warehouse — a test's — starts with clean counts)."""
    with _THROTTLES_LOCK:
        return _THROTTLES.setdefault(wh.path, Throttle())


# --- screens ------------------------------------------------------------------------------------

_COLUMNS = (
    "id, name, units, slides, rotate_s, refresh_s, lang, created_by, created_at, revoked_by, "
    "revoked_at, last_seen_at, last_seen_from"
)


def _screen(row: tuple) -> Screen:
    return Screen(
        id=row[0], name=row[1], units=tuple(row[2]), slides=tuple(row[3]), rotate=row[4],
        refresh=row[5], lang=row[6], created_by=row[7], created_at=row[8], revoked_by=row[9],
        revoked_at=row[10], last_seen_at=row[11], last_seen_from=row[12],
    )  # fmt: skip


def _admin(who: Actor) -> None:
    if not can(who, "manage_screens"):
        raise ScopeError(Message("ks_err_admins_only"))


def _audit(cur, now: datetime, by: str | None, key: str | None, field: str, new, reason=None):
    audit.record(
        cur, changed_at=now, changed_by=by, entity="kiosk", key=key,
        field=field, new=new, reason=reason,
    )  # fmt: skip


def _seconds(value: object, refusal: str, low: int) -> int:
    """`refusal`: the key of the message that names the setting."""
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= MAX_SECONDS:
        raise KioskError(Message(refusal, low=low, high=MAX_SECONDS, value=repr(value)))
    return value


def create(
    wh: Warehouse,
    who: Actor,
    *,
    name: str,
    units: list[str] | tuple[str, ...],
    now: datetime,
    slides: list[str] | tuple[str, ...] = SLIDES,
    rotate: int = 30,
    refresh: int = 60,
    lang: str = "zh",
) -> Created:
    """A new screen; the token comes back here once and is stored only as its hash."""
    _admin(who)
    name = (name or "").strip()
    if not name or len(name) > MAX_NAME:
        raise KioskError(Message("ks_err_name", n=MAX_NAME))
    codes = list(dict.fromkeys(str(u).strip() for u in units or () if str(u).strip()))
    if not codes:
        raise KioskError(Message("ks_err_no_units"))
    known = {
        r[0] for r in wh.rows("SELECT code FROM org_unit WHERE list_contains(?, code)", [codes])
    }
    if missing := [c for c in codes if c not in known]:
        raise KioskError(Message("ks_err_unknown_units", units=Items(missing, commas=True)))
    unknown = [s for s in slides if s not in SLIDES]
    if unknown or not slides:
        raise KioskError(Message("ks_err_slides", slides=Items(SLIDES, commas=True)))
    if lang not in LANGS:
        raise KioskError(Message("ks_err_lang", value=repr(lang)))
    rotate = _seconds(rotate, N_("ks_err_rotation"), MIN_ROTATE)
    refresh = _seconds(refresh, N_("ks_err_refresh"), MIN_REFRESH)
    chosen = [s for s in SLIDES if s in slides]
    token = new_token()
    with wh.transaction() as cur:
        taken = cur.execute(
            "SELECT 1 FROM kiosk_screen WHERE name = ? AND revoked_at IS NULL", [name]
        ).fetchone()
        if taken:
            raise KioskError(Message("ks_err_name_taken", name=name))
        insert = (
            "INSERT INTO kiosk_screen (id, name, units, slides, rotate_s, refresh_s, lang, "  # noqa: S608
            "token_hash, created_by, created_at) VALUES (nextval('kiosk_screen_id'), ?, ?, ?, ?, "
            f"?, ?, ?, ?, ?) RETURNING {_COLUMNS}"
        )
        row = cur.execute(
            insert, [name, codes, chosen, rotate, refresh, lang, token_hash(token), who.name, now]
        ).fetchone()
        settings = (
            f"units {', '.join(codes)}; slides {', '.join(chosen)}; rotate {rotate} s; "
            f"refresh {refresh} s; {lang}"
        )
        _audit(cur, now, who.name, name, "created", settings)
    return Created(_screen(row), token)


def list_screens(wh: Warehouse, who: Actor) -> list[Screen]:
    """Every screen, active ones first, newest first; never a token or its hash."""
    _admin(who)
    rows = wh.rows(
        f"SELECT {_COLUMNS} FROM kiosk_screen "  # noqa: S608 - fixed text
        "ORDER BY revoked_at IS NOT NULL, created_at DESC, id DESC"
    )
    return [_screen(r) for r in rows]


def revoke(wh: Warehouse, who: Actor, screen_id: int, now: datetime) -> Screen:
    """End a screen: its token opens nothing from now on, and the open wall stops at its next
    tick."""
    _admin(who)
    with wh.transaction() as cur:
        row = cur.execute(
            f"SELECT {_COLUMNS} FROM kiosk_screen WHERE id = ?",  # noqa: S608 - fixed text
            [screen_id],
        ).fetchone()
        if row is None:
            raise KioskError(Message("ks_err_no_screen", id=screen_id))
        screen = _screen(row)
        if not screen.active:
            raise KioskError(Message("ks_err_revoked", name=screen.name))
        digest = cur.execute(
            "UPDATE kiosk_screen SET revoked_at = ?, revoked_by = ? WHERE id = ? "
            "RETURNING token_hash",
            [now, who.name, screen_id],
        ).fetchone()[0]
        _audit(cur, now, who.name, screen.name, "revoked", None)
    throttle_for(wh).forget(digest)
    return replace(screen, revoked_at=now, revoked_by=who.name)


def verify(
    wh: Warehouse, token: str | None, now: datetime, client: str = "local"
) -> Screen | Refusal:
    """The screen this token opens, or why it opens nothing. Wrong tokens are audited and
    counted; a busy client (or a busy moment overall) is refused without a look-up. Marks the
    screen seen (at most every SEEN_EVERY)."""
    if not token:
        return Refusal("missing")
    client = (client or "local")[:_CLIENT_IN_LOG]
    digest = token_hash(token)
    guard = throttle_for(wh)
    if guard.blocked(client, now) and not guard.recently_good(digest, now):
        return Refusal("throttled")
    if not well_formed(token):
        return _wrong(wh, guard, digest, client, now, "malformed")
    row = wh.one(
        f"SELECT {_COLUMNS}, token_hash FROM kiosk_screen WHERE token_hash = ?",  # noqa: S608
        [digest],
    )
    if row is None:
        return _wrong(wh, guard, digest, client, now, "unknown")
    screen = _screen(row[:-1])
    if not screen.active:
        guard.forget(digest)
        if guard.note_revoked(digest, now):
            with wh.transaction() as cur:
                _audit(cur, now, f"kiosk@{client}", screen.name, "revoked_token_used", client)
        return Refusal("revoked")
    guard.good(digest, now)
    seen = screen.last_seen_at
    if seen is None or now - seen >= SEEN_EVERY or screen.last_seen_from != client:
        with wh.transaction(data=False) as cur:  # bookkeeping: the wall's caches stay
            cur.execute(
                "UPDATE kiosk_screen SET last_seen_at = ?, last_seen_from = ? WHERE id = ?",
                [now, client, screen.id],
            )
        screen = replace(screen, last_seen_at=now, last_seen_from=client)
    return screen


def _wrong(
    wh: Warehouse, guard: Throttle, digest: str, client: str, now: datetime, why: str
) -> Refusal:
    started = guard.wrong(client, now)
    with wh.transaction() as cur:
        key = f"sha256:{digest[:HASH_PREFIX]}"
        _audit(cur, now, f"kiosk@{client}", key, "wrong_token", why, client)
        for who in started:
            limit = guard.per_client if who == "client" else guard.overall
            _audit(
                cur, now, f"kiosk@{client}", None, "throttled", who,
                f"{limit} wrong tokens within {guard.window.total_seconds():.0f} s; refused "
                f"without checking until {now + guard.block:%H:%M:%S}",
            )  # fmt: skip
    return Refusal(why)
