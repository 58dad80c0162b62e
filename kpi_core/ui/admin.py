"""Admin page: users (role, scope, password), kiosk screens, the whole change log, backup and
restore.

The work is in `kpi_core.users`, `kpi_core.kiosk` and `kpi_core.backup`; this module only draws
and calls them.
"""

from __future__ import annotations

import tempfile
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit

import pandas as pd
import streamlit as st

from kpi_core import auth, backup, kiosk, sessions, users
from kpi_core.access import ROLE_WORDS, ROLES, can
from kpi_core.errors import KpiError
from kpi_core.texts import N_
from kpi_core.ui import PageContext
from kpi_core.ui.change_log import audit_section
from kpi_core.ui.slides import SLIDE_TITLE
from kpi_core.ui.widgets import error_text

_NEW = ""  # the user picker's entry for a new user


def main(ctx: PageContext) -> None:
    st.title(ctx.t("ad_title"))
    if not can(ctx.actor, "manage_users"):
        st.info(ctx.t("ad_not_allowed"))
        st.stop()
    if flash := st.session_state.pop("ad_flash", None):
        st.success(flash)
    sections = [N_("ad_tab_users"), N_("ad_tab_kiosk"), N_("ad_tab_audit"), N_("ad_tab_backup")]
    tabs = dict(zip(sections, st.tabs([ctx.t(s) for s in sections]), strict=True))
    with tabs["ad_tab_users"]:
        users_section(ctx)
    with tabs["ad_tab_kiosk"]:
        kiosk_section(ctx)
    with tabs["ad_tab_audit"]:
        audit_section(ctx)
    with tabs["ad_tab_backup"]:
        backup_section(ctx)


def users_section(ctx: PageContext) -> None:
    frame = users.users_frame(ctx.wh, ctx.actor)

    def when(values) -> list[str]:
        return ["" if pd.isna(v) else f"{v:%Y-%m-%d %H:%M}" for v in values]

    shown = frame.assign(
        role=[ctx.t(ROLE_WORDS[r]) for r in frame["role"]],
        scope=[s if r != "admin" else ctx.t("ad_scope_all") for s, r in
               zip(frame["scope"], frame["role"], strict=True)],
        locked_until=when(frame["locked_until"]),
        last_sign_in=when(frame["last_sign_in"]),
    )  # fmt: skip
    labels = {
        "name": ctx.t("ad_name"), "display_name": ctx.t("ad_display_name"),
        "role": ctx.t("ad_role"), "scope": ctx.t("ad_scope"),
        "password": ctx.t("ad_col_password"), "email": ctx.t("ad_email"),
        "locked_until": ctx.t("ad_col_locked"), "last_sign_in": ctx.t("ad_col_last_sign_in"),
    }  # fmt: skip
    st.dataframe(shown.rename(columns=labels), hide_index=True, width="stretch")

    known = {u.name: u for u in users.list_users(ctx.wh, ctx.actor)}
    if "ad_pick_next" in st.session_state:  # set by the last save or delete
        st.session_state["ad_user_pick"] = st.session_state.pop("ad_pick_next")
    picked = st.selectbox(
        ctx.t("ad_user_pick"), [_NEW, *known],
        format_func=lambda n: ctx.t("ad_new_user") if n == _NEW else n, key="ad_user_pick",
    )  # fmt: skip
    current = known.get(picked)
    units = sorted(ctx.cat.unit_by_code)
    suffix = picked or "new"  # fresh widgets for each user picked
    with st.form(f"ad_user_form_{suffix}"):
        name = st.text_input(
            ctx.t("ad_name"), value=current.name if current else "",
            disabled=current is not None, key=f"ad_name_{suffix}",
        )  # fmt: skip
        display = st.text_input(
            ctx.t("ad_display_name"), value=current.display_name if current else "",
            key=f"ad_display_{suffix}",
        )  # fmt: skip
        role = st.selectbox(
            ctx.t("ad_role"), ROLES, index=ROLES.index(current.role) if current else 0,
            format_func=lambda r: ctx.t(ROLE_WORDS[r]), key=f"ad_role_{suffix}",
        )  # fmt: skip
        email = st.text_input(
            ctx.t("ad_email"), value=current.email if current else "",
            help=ctx.t("ad_email_help"), key=f"ad_email_{suffix}",
        )  # fmt: skip
        scope = st.multiselect(
            ctx.t("ad_scope"), units,
            default=[c for c in current.scope if c in units] if current else [],
            format_func=lambda c: f"{c} · {ctx.cat.unit_by_code[c].name(ctx.lang)}",
            help=ctx.t("ad_scope_help"), placeholder=ctx.t("ad_choose_units"),
            key=f"ad_scope_{suffix}",
        )  # fmt: skip
        password = st.text_input(
            ctx.t("ad_password"), type="password", help=ctx.t("ad_password_help"),
            key=f"ad_password_{suffix}",
        )  # fmt: skip
        submitted = st.form_submit_button(ctx.t("ad_save_user"), key=f"ad_save_{suffix}")
    if submitted:
        target = current.name if current else name.strip()
        users.save_user(
            ctx.wh, ctx.actor, target, display_name=display, role=role, scope=scope,
            password=password or None, email=email, create=current is None,
        )  # fmt: skip
        _done(ctx.t("ad_user_saved", name=target), pick=target)

    if current is not None and current.locked_until is not None:
        st.warning(ctx.t("ad_locked", name=current.name, until=f"{current.locked_until:%H:%M}"))
        if st.button(ctx.t("ad_unlock"), key=f"ad_unlock_{suffix}"):
            users.unlock(ctx.wh, ctx.actor, current.name)
            _done(ctx.t("ad_unlocked", name=current.name), pick=current.name)

    if current is not None:
        _sessions_panel(ctx, current.name, suffix)

    if current is not None:
        sure = st.checkbox(
            ctx.t("ad_delete_confirm", name=current.name), key=f"ad_delete_sure_{suffix}"
        )
        if st.button(ctx.t("ad_delete"), disabled=not sure, key=f"ad_delete_{suffix}"):
            users.delete_user(ctx.wh, ctx.actor, current.name)
            _done(ctx.t("ad_user_deleted", name=current.name), pick=_NEW)


def _sessions_panel(ctx: PageContext, name: str, suffix: str) -> None:
    """The user's live sessions, and signing them out everywhere (a lost laptop, a leaver)."""
    now = datetime.now()
    live = sessions.live(ctx.wh, name, now=now, rules=auth.policy())
    if not live:
        st.caption(ctx.t("ad_no_sessions", name=name))
        return
    st.caption(
        ctx.t("ad_sessions", name=name, n=len(live), last=f"{live[0].last_seen:%Y-%m-%d %H:%M}")
    )
    if st.button(ctx.t("ad_end_sessions"), icon=":material/logout:", key=f"ad_end_{suffix}"):
        n = sessions.end_sessions(ctx.wh, ctx.actor, name, now=datetime.now())
        _done(ctx.t("ad_sessions_ended", name=name, n=n), pick=name)


def _done(message: str, pick: str) -> None:
    st.session_state["ad_flash"] = message
    st.session_state["ad_pick_next"] = pick
    st.rerun()


def kiosk_url(token: str) -> str:
    """The wall's address: the Big screen page next to this one, with the token. Relative when
    the browser's address is unknown (a test)."""
    here = urlsplit(st.context.url or "")
    if here.scheme and here.netloc:
        base = here.path.rsplit("/", 1)[0]  # the app's own path prefix, if it is served under one
        return f"{here.scheme}://{here.netloc}{base}/Big_Screen?token={token}"
    return f"/Big_Screen?token={token}"


def _when(value: datetime | None) -> str:
    return "" if value is None else f"{value:%Y-%m-%d %H:%M}"


def kiosk_section(ctx: PageContext) -> None:
    """Create a screen (its URL shown once, in this run only), list them, revoke one."""
    st.caption(ctx.t("ks_intro"))
    if flash := st.session_state.pop("ks_flash", None):
        (st.success if flash[0] == "ok" else st.error)(flash[1])
    codes = sorted(ctx.cat.unit_by_code)
    unit_label = lambda c: f"{c} · {ctx.cat.unit_by_code[c].name(ctx.lang)}"  # noqa: E731
    with st.form("ks_form"):
        name = st.text_input(ctx.t("ks_name"), max_chars=kiosk.MAX_NAME, key="ks_name")
        units = st.multiselect(
            ctx.t("ks_units"), codes, format_func=unit_label, help=ctx.t("ks_units_help"),
            placeholder=ctx.t("ad_choose_units"), key="ks_units",
        )  # fmt: skip
        slides = st.multiselect(
            ctx.t("ks_slides"), kiosk.SLIDES, default=list(kiosk.SLIDES),
            format_func=lambda s: ctx.t(SLIDE_TITLE[s]), key="ks_slides",
        )  # fmt: skip
        c1, c2, c3 = st.columns(3)
        rotate = c1.number_input(
            ctx.t("ks_rotate"), min_value=kiosk.MIN_ROTATE, max_value=kiosk.MAX_SECONDS,
            value=30, step=5, key="ks_rotate",
        )  # fmt: skip
        refresh = c2.number_input(
            ctx.t("ks_refresh"), min_value=kiosk.MIN_REFRESH, max_value=kiosk.MAX_SECONDS,
            value=60, step=10, key="ks_refresh",
        )  # fmt: skip
        lang = c3.selectbox(
            ctx.t("ks_lang"), kiosk.LANGS, format_func=lambda c: "中文" if c == "zh" else "English",
            key="ks_lang",
        )  # fmt: skip
        submitted = st.form_submit_button(ctx.t("ks_create"), type="primary", key="ks_create")
    if submitted:
        try:
            made = kiosk.create(
                ctx.wh, ctx.actor, name=name, units=units, slides=slides, rotate=int(rotate),
                refresh=int(refresh), lang=lang, now=datetime.now(),
            )  # fmt: skip
        except KpiError as exc:
            st.error(error_text(ctx, exc))
        else:
            # The token exists outside the wall only here, in this run: nowhere in the session.
            st.success(ctx.t("ks_created", name=made.screen.name))
            st.warning(ctx.t("ks_copy_now"))
            st.code(kiosk_url(made.token), language=None, wrap_lines=True)

    st.subheader(ctx.t("ks_screens"))
    screens = kiosk.list_screens(ctx.wh, ctx.actor)
    if not screens:
        st.caption(ctx.t("ks_none"))
        return
    # What an admin looks for first: which screens are live and whether they are still seen.
    rows = [
        {
            ctx.t("ks_col_name"): s.name,
            ctx.t("ks_col_state"): (
                ctx.t("ks_active") if s.active else
                ctx.t("ks_revoked_at", when=_when(s.revoked_at), by=s.revoked_by or "")
            ),
            ctx.t("ks_col_seen"): (
                f"{_when(s.last_seen_at)} · {s.last_seen_from}" if s.last_seen_at else
                ctx.t("ks_never_seen")
            ),
            ctx.t("ks_col_units"): ", ".join(s.units),
            ctx.t("ks_col_created"): f"{_when(s.created_at)} · {s.created_by or ''}",
            ctx.t("ks_col_timing"): ctx.t("ks_timing", rotate=s.rotate, refresh=s.refresh),
            ctx.t("ks_lang"): "中文" if s.lang == "zh" else "English",
            ctx.t("ks_col_slides"): ", ".join(ctx.t(SLIDE_TITLE[x]) for x in s.slides),
        }
        for s in screens
    ]  # fmt: skip
    st.dataframe(rows, hide_index=True, width="stretch")

    active = {s.id: s for s in screens if s.active}
    if not active:
        return
    st.subheader(ctx.t("ks_revoke_title"))
    picked = st.selectbox(
        ctx.t("ks_pick"), list(active), index=None, placeholder=ctx.t("ks_pick_placeholder"),
        format_func=lambda i: f"{active[i].name} · {', '.join(active[i].units)}", key="ks_pick",
    )  # fmt: skip
    if picked is None:
        return
    sure = st.checkbox(ctx.t("ks_revoke_confirm", name=active[picked].name), key="ks_revoke_sure")
    # A callback, so the list above is drawn after the change on the run that follows.
    st.button(
        ctx.t("ks_revoke"), disabled=not sure, key="ks_revoke", on_click=_revoke,
        args=(ctx, picked),
    )  # fmt: skip


def _revoke(ctx: PageContext, screen_id: int) -> None:
    try:
        done = kiosk.revoke(ctx.wh, ctx.actor, screen_id, datetime.now())
    except KpiError as exc:
        st.session_state["ks_flash"] = ("error", error_text(ctx, exc))
    else:
        st.session_state["ks_flash"] = ("ok", ctx.t("ks_revoked", name=done.name))
    for key in ("ks_pick", "ks_revoke_sure"):
        st.session_state.pop(key, None)


def backup_section(ctx: PageContext) -> None:
    if ctx.wh.engine != "duckdb":  # PostgreSQL's backups are its own (README)
        st.info(ctx.t("ad_backup_pg"))
        return
    st.caption(ctx.t("ad_backup_intro"))
    if st.session_state.pop("ad_restore_reset", False):  # after a restore: start over
        for key in ("ad_restore_sure", "ad_pick_backup"):
            st.session_state.pop(key, None)
    conf = backup.settings(ctx.wh)
    if conf.keep:
        st.caption(ctx.t("ad_backup_dir", dir=str(conf.directory), keep=conf.keep))
    else:
        st.caption(ctx.t("ad_backup_dir_all", dir=str(conf.directory)))
    if st.button(ctx.t("ad_backup_now"), key="ad_backup_now", type="primary"):
        done = backup.backup(ctx.wh, conf.directory, ctx.actor, keep=conf.keep)
        st.session_state["ad_last_backup"] = str(done.path)
        st.success(
            ctx.t("ad_backup_done", file=done.path.name, tables=len(done.manifest.tables),
                  rows=f"{done.manifest.rows:,}")
        )  # fmt: skip
    last = Path(st.session_state.get("ad_last_backup", ""))
    if last.name and last.is_file():
        st.download_button(
            ctx.t("ad_backup_download"), data=last.read_bytes(), file_name=last.name,
            mime="application/zip", key="ad_backup_download",
        )  # fmt: skip

    st.subheader(ctx.t("ad_backups"))
    found = backup.list_backups(conf.directory)
    if found:
        rows = [
            {
                ctx.t("ad_col_file"): p.name,
                ctx.t("ad_col_created"): m.created_at if m else ctx.t("ad_unreadable"),
                ctx.t("ad_col_by"): m.created_by if m else "",
                ctx.t("ad_col_schema"): m.schema_version if m else None,
                ctx.t("ad_col_rows"): m.rows if m else None,
                ctx.t("ad_col_size"): round(p.stat().st_size / 1024, 1),
            }
            for p, m in found
        ]
        st.dataframe(rows, hide_index=True, width="stretch")
    else:
        st.caption(ctx.t("ad_no_backups"))

    st.subheader(ctx.t("ad_restore"))
    origin = st.radio(
        ctx.t("ad_restore_from"), ["list", "upload"], horizontal=True, key="ad_restore_from",
        format_func=lambda o: ctx.t("ad_from_list" if o == "list" else "ad_from_upload"),
    )  # fmt: skip
    if origin == "list":
        readable = [p for p, m in found if m is not None]
        chosen = st.selectbox(
            ctx.t("ad_pick_backup"), readable, format_func=lambda p: p.name, index=None,
            key="ad_pick_backup",
        )  # fmt: skip
        if chosen is not None:
            _restore_panel(ctx, chosen, chosen.name)
        return
    upload = st.file_uploader(ctx.t("ad_upload"), type=["zip"], key="ad_upload")
    if upload is None:
        return
    # The uploaded bytes as a file for the check and the restore; gone at the end of the run.
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / Path(upload.name).name
        path.write_bytes(upload.getvalue())
        _restore_panel(ctx, path, upload.name)


def _restore_panel(ctx: PageContext, path: Path, label: str) -> None:
    manifest = backup.read_manifest(path)
    st.info(
        ctx.t("ad_manifest", created=manifest.created_at, by=manifest.created_by,
              schema=manifest.schema_version, tables=len(manifest.tables), rows=manifest.rows)
    )  # fmt: skip
    with st.expander("manifest.json"):
        st.json(manifest.to_json(), expanded=False)
    sure = st.checkbox(ctx.t("ad_restore_confirm"), key="ad_restore_sure")
    if st.button(
        ctx.t("ad_restore_button"), disabled=not sure, type="primary", key="ad_restore_go"
    ):
        done = backup.restore(ctx.wh, path, ctx.actor)
        st.session_state["ad_restore_reset"] = True
        st.session_state.pop("ad_last_backup", None)
        st.session_state["ad_flash"] = ctx.t("ad_restored", file=label, kept=str(done.kept_as))
        st.rerun()
