"""Kiosk screens in the core (kpi_core.kiosk): created by admins with a token shown once and
stored hashed, verified at every tick, revoked, wrong tokens audited and throttled, last seen.
Every call gets a fixed `now`."""

from datetime import datetime, timedelta

import pytest

from kpi_core import access, kiosk, service
from kpi_core.errors import ScopeError
from kpi_core.migrations import MIGRATIONS
from kpi_core.warehouse import Warehouse

BOTH_ENGINES = True  # tests/conftest.py: on the DuckDB file and on PostgreSQL
NOW = datetime(2026, 11, 3, 9, 0)
ADMIN = access.SYSTEM


def _make(wh, name="wall", units=("GROUP",), **kw):
    return kiosk.create(wh, ADMIN, name=name, units=list(units), now=NOW, **kw)


def _audit(wh, field=None):
    sql = "SELECT changed_at, changed_by, entity, key, field, old, new, reason FROM audit "
    sql += "WHERE entity = 'kiosk'" + (" AND field = ?" if field else "") + " ORDER BY changed_at"
    return wh.rows(sql, [field] if field else [])


def _everything(wh) -> str:
    """Every cell of every table, as text: where a token must never be."""
    out = []
    tables = wh.rows(
        "SELECT table_name FROM information_schema.tables"
        " WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'"
    )
    assert len(tables) > 10, tables
    for (table,) in tables:
        out += [str(c) for r in wh.rows(f'SELECT * FROM "{table}"') for c in r]
    return "\n".join(out)


def test_a_new_screen_hands_out_its_token_once_and_keeps_only_the_hash(demo_wh):
    made = _make(demo_wh, units=["SALES", "PROD"], slides=["risks", "company"], rotate=20,
                 refresh=30, lang="en")  # fmt: skip
    token = made.token
    assert len(token) == 43 and kiosk.well_formed(token)
    assert made.screen.units == ("SALES", "PROD")
    assert made.screen.slides == ("company", "risks")  # in the wall's order
    assert (made.screen.rotate, made.screen.refresh, made.screen.lang) == (20, 30, "en")
    assert token not in repr(made) and token not in repr(made.screen)
    stored = demo_wh.one("SELECT token_hash FROM kiosk_screen")[0]
    assert stored == kiosk.token_hash(token) and stored != token
    assert token not in _everything(demo_wh)
    listed = kiosk.list_screens(demo_wh, ADMIN)
    assert [s.name for s in listed] == ["wall"] and not hasattr(listed[0], "token")
    created = _audit(demo_wh, "created")
    assert [(r[1], r[3]) for r in created] == [("system", "wall")]
    assert "SALES, PROD" in created[0][6]
    # Two screens never share a token.
    assert _make(demo_wh, name="second").token != token


def test_a_token_opens_its_screen_and_marks_it_seen(demo_wh):
    made = _make(demo_wh)
    seen = kiosk.verify(demo_wh, made.token, NOW, "10.0.0.7")
    assert isinstance(seen, kiosk.Screen) and seen.id == made.screen.id
    assert seen.units == ("GROUP",)
    row = lambda: demo_wh.one("SELECT last_seen_at, last_seen_from FROM kiosk_screen")  # noqa: E731
    assert row() == (NOW, "10.0.0.7")
    # A wall ticks every few seconds: the warehouse is written at most once a minute.
    kiosk.verify(demo_wh, made.token, NOW + timedelta(seconds=30), "10.0.0.7")
    assert row() == (NOW, "10.0.0.7")
    later = NOW + timedelta(seconds=61)
    kiosk.verify(demo_wh, made.token, later, "10.0.0.7")
    assert row() == (later, "10.0.0.7")
    # Seen from somewhere else: noted straight away.
    other = later + timedelta(seconds=1)
    kiosk.verify(demo_wh, made.token, other, "10.0.0.9")
    assert row() == (other, "10.0.0.9")
    assert kiosk.list_screens(demo_wh, ADMIN)[0].last_seen_at == other
    assert _audit(demo_wh, "wrong_token") == []


def test_short_and_low_entropy_tokens_are_refused_before_any_look_up(demo_wh):
    weak = ["a" * 16, "a" * 43, "ab" * 21 + "a", "0123456789" * 4 + "012", "x" * 200, "short"]
    for token in weak:
        assert not kiosk.well_formed(token), token
    # Even a weak token that somehow sits in the table (written by hand) opens nothing.
    with demo_wh.transaction() as cur:
        cur.execute(
            "INSERT INTO kiosk_screen (id, name, units, slides, rotate_s, refresh_s, lang, "
            "token_hash, created_at) VALUES (99, 'hand', ['GROUP'], ['company'], 30, 60, 'zh', ?, ?)",
            [kiosk.token_hash("a" * 16), NOW],
        )
    refused = [kiosk.verify(demo_wh, t, NOW, f"10.0.1.{i}") for i, t in enumerate(weak)]
    assert [r.reason for r in refused] == ["malformed"] * len(weak)
    assert kiosk.verify(demo_wh, "", NOW) == kiosk.Refusal("missing")
    assert kiosk.verify(demo_wh, None, NOW) == kiosk.Refusal("missing")
    assert demo_wh.one("SELECT last_seen_at FROM kiosk_screen WHERE id = 99")[0] is None
    for _ in range(200):
        assert kiosk.well_formed(kiosk.new_token())


def test_wrong_tokens_are_audited_with_a_hash_prefix_only(demo_wh):
    _make(demo_wh)
    guesses = [kiosk.new_token(), "not-a-token", kiosk.new_token()]
    for guess in guesses:
        assert kiosk.verify(demo_wh, guess, NOW, "203.0.113.5").reason in ("unknown", "malformed")
    rows = _audit(demo_wh, "wrong_token")
    assert len(rows) == 3
    assert {r[1] for r in rows} == {"kiosk@203.0.113.5"}
    assert [r[3] for r in rows] == [
        f"sha256:{kiosk.token_hash(g)[: kiosk.HASH_PREFIX]}" for g in guesses
    ]
    assert [r[6] for r in rows] == ["unknown", "malformed", "unknown"]
    text = _everything(demo_wh)
    assert not any(g in text for g in guesses)
    assert not any(kiosk.token_hash(g) in text for g in guesses)  # not even the whole hash


def test_a_client_guessing_is_throttled_and_others_are_not(demo_wh):
    wall = _make(demo_wh).token
    fresh = _make(demo_wh, name="fresh").token
    attacker = "198.51.100.1"
    t = NOW
    for i in range(10):
        t = NOW + timedelta(seconds=i)
        assert kiosk.verify(demo_wh, kiosk.new_token(), t, attacker).reason == "unknown"
    throttled = _audit(demo_wh, "throttled")
    assert [(r[1], r[6]) for r in throttled] == [(f"kiosk@{attacker}", "client")]
    # From now on the attacker is refused without a look-up and without a row per guess,
    # even with a right token it has not shown before.
    rows = len(_audit(demo_wh))
    for _ in range(20):
        assert kiosk.verify(demo_wh, kiosk.new_token(), t, attacker).reason == "throttled"
    assert kiosk.verify(demo_wh, fresh, t, attacker).reason == "throttled"
    assert len(_audit(demo_wh)) == rows
    # Everyone else is served.
    assert isinstance(kiosk.verify(demo_wh, wall, t, "10.0.0.7"), kiosk.Screen)
    # The block runs out.
    after = t + timedelta(minutes=5, seconds=1)
    assert isinstance(kiosk.verify(demo_wh, fresh, after, attacker), kiosk.Screen)


def test_slow_guessing_is_not_blocked(demo_wh):
    wall = _make(demo_wh).token
    for i in range(30):  # one wrong token every 7 s: never 10 within a minute
        when = NOW + timedelta(seconds=7 * i)
        assert kiosk.verify(demo_wh, kiosk.new_token(), when, "10.9.9.9").reason == "unknown"
    assert isinstance(kiosk.verify(demo_wh, wall, when, "10.9.9.9"), kiosk.Screen)
    assert _audit(demo_wh, "throttled") == []


def test_guessing_from_many_addresses_blocks_new_screens_but_not_running_ones(demo_wh):
    running = _make(demo_wh).token
    new = _make(demo_wh, name="new").token
    assert isinstance(kiosk.verify(demo_wh, running, NOW, "10.0.0.7"), kiosk.Screen)
    guard = kiosk.throttle_for(demo_wh)
    for i in range(guard.overall):  # each address stays under its own limit
        kiosk.verify(demo_wh, kiosk.new_token(), NOW + timedelta(seconds=1), f"192.0.2.{i}")
    assert [r[6] for r in _audit(demo_wh, "throttled")] == ["everyone"]
    t = NOW + timedelta(seconds=2)
    assert kiosk.verify(demo_wh, kiosk.new_token(), t, "192.0.2.200").reason == "throttled"
    assert kiosk.verify(demo_wh, new, t, "10.0.0.8").reason == "throttled"
    # The wall that proved its token a moment ago keeps ticking through the attack...
    for s in range(0, 60, 10):
        assert isinstance(kiosk.verify(demo_wh, running, t + timedelta(seconds=s), "10.0.0.7"),
                          kiosk.Screen)  # fmt: skip
    # ...and is still stopped by a revocation.
    screen_id = kiosk.list_screens(demo_wh, ADMIN)[-1].id
    assert kiosk.list_screens(demo_wh, ADMIN)[-1].name == "wall"
    kiosk.revoke(demo_wh, ADMIN, screen_id, t + timedelta(seconds=61))
    assert not isinstance(kiosk.verify(demo_wh, running, t + timedelta(seconds=62), "10.0.0.7"),
                          kiosk.Screen)  # fmt: skip


def test_revoking_stops_the_token_and_is_audited(demo_wh):
    made = _make(demo_wh)
    other = _make(demo_wh, name="other")
    assert isinstance(kiosk.verify(demo_wh, made.token, NOW, "10.0.0.7"), kiosk.Screen)
    later = NOW + timedelta(minutes=1)
    done = kiosk.revoke(demo_wh, ADMIN, made.screen.id, later)
    assert done.revoked_at == later and done.revoked_by == "system" and not done.active
    assert kiosk.verify(demo_wh, made.token, later, "10.0.0.7") == kiosk.Refusal("revoked")
    assert isinstance(kiosk.verify(demo_wh, other.token, later, "10.0.0.8"), kiosk.Screen)
    assert [(r[3], r[1]) for r in _audit(demo_wh, "revoked")] == [("wall", "system")]
    # The revoked wall that keeps asking is noted now and then, not at every tick, and it is
    # not a guess: it never throttles anybody.
    for s in range(0, 300, 5):
        when = later + timedelta(seconds=s)
        assert kiosk.verify(demo_wh, made.token, when, "10.0.0.7").reason == "revoked"
    assert len(_audit(demo_wh, "revoked_token_used")) == 1
    assert _audit(demo_wh, "throttled") == []
    listed = {s.name: s for s in kiosk.list_screens(demo_wh, ADMIN)}
    assert not listed["wall"].active and listed["other"].active
    assert [s.name for s in kiosk.list_screens(demo_wh, ADMIN)] == ["other", "wall"]
    with pytest.raises(kiosk.KioskError, match="already revoked"):
        kiosk.revoke(demo_wh, ADMIN, made.screen.id, later)
    with pytest.raises(kiosk.KioskError, match="no kiosk screen"):
        kiosk.revoke(demo_wh, ADMIN, 12345, later)
    # The name is free again once revoked.
    assert _make(demo_wh, name="wall").screen.active


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"name": " "}, "name of 1 to 64"),
        ({"name": "x" * 65}, "name of 1 to 64"),
        ({"units": []}, "at least one unit"),
        ({"units": ["GROUP", "NOPE"]}, "Unknown unit"),
        ({"slides": ["company", "weather"]}, "Slides must be"),
        ({"slides": []}, "Slides must be"),
        ({"lang": "fr"}, "zh or en"),
        ({"rotate": 4}, "Rotation must be"),
        ({"refresh": 9}, "Refresh must be"),
        ({"refresh": 3601}, "Refresh must be"),
        ({"rotate": True}, "Rotation must be"),
    ],
)
def test_bad_settings_are_refused_clearly(demo_wh, kw, message):
    args = {"name": "wall", "units": ["GROUP"], **kw}
    with pytest.raises(kiosk.KioskError, match=message):
        kiosk.create(demo_wh, ADMIN, now=NOW, **args)
    assert demo_wh.one("SELECT count(*) FROM kiosk_screen")[0] == 0


def test_a_name_in_use_is_refused(demo_wh):
    _make(demo_wh)
    with pytest.raises(kiosk.KioskError, match="exists"):
        _make(demo_wh)


def test_only_admins_manage_screens(demo_wh):
    made = _make(demo_wh)
    for user in ("head_sales", "analyst", "viewer_prod"):
        who = service.actor(demo_wh, user)
        with pytest.raises(ScopeError):
            kiosk.create(demo_wh, who, name="mine", units=["SALES"], now=NOW)
        with pytest.raises(ScopeError):
            kiosk.list_screens(demo_wh, who)
        with pytest.raises(ScopeError):
            kiosk.revoke(demo_wh, who, made.screen.id, NOW)
    assert kiosk.list_screens(demo_wh, ADMIN)[0].active


def test_migration_10_applies_whether_or_not_9_came_first(tmp_path, monkeypatch):
    """Migration 9 (sign-in sessions) is written on another branch: a file that got 10 before 9
    existed must still get 9 once it does."""
    import kpi_core.warehouse as warehouse_module

    without_nine = [m for m in MIGRATIONS if m[0] != 9]
    monkeypatch.setattr(warehouse_module, "MIGRATIONS", without_nine)
    wh = Warehouse(tmp_path / "wh.duckdb", linger=0)
    assert wh.schema_version() == max(m[0] for m in without_nine)
    wh.close()
    nine = (9, "stand-in for migration 9", "CREATE TABLE nine_was_here (a INTEGER);")
    monkeypatch.setattr(warehouse_module, "MIGRATIONS", sorted([*without_nine, nine]))
    wh = Warehouse(tmp_path / "wh.duckdb", linger=0)
    applied = [r[0] for r in wh.rows("SELECT version FROM schema_version ORDER BY version")]
    assert applied == sorted(m[0] for m in [*without_nine, nine])
    assert wh.one("SELECT count(*) FROM nine_was_here")[0] == 0
    wh.close()
