"""Admin page: users (role, scope, password), the whole change log, backup and restore.

The work is in `kpi_core.users` and `kpi_core.backup`; this module only draws and calls them.
"""

from __future__ import annotations

import tempfile
from datetime import datetime
from pathlib import Path

import pandas as pd
import streamlit as st

from kpi_core import auth, backup, sessions, users
from kpi_core.access import ROLES
from kpi_core.ui import PageContext
from kpi_core.ui.targets import audit_section

_NEW = ""  # the user picker's entry for a new user


def main(ctx: PageContext) -> None:
    st.title(ctx.t("ad_title"))
    if ctx.actor.role != "admin":
        st.info(ctx.t("ad_not_allowed"))
        st.stop()
    if flash := st.session_state.pop("ad_flash", None):
        st.success(flash)
    sections = ["ad_tab_users", "ad_tab_audit", "ad_tab_backup"]
    tabs = dict(zip(sections, st.tabs([ctx.t(s) for s in sections]), strict=True))
    with tabs["ad_tab_users"]:
        users_section(ctx)
    with tabs["ad_tab_audit"]:
        audit_section(ctx)
    with tabs["ad_tab_backup"]:
        backup_section(ctx)


def users_section(ctx: PageContext) -> None:
    frame = users.users_frame(ctx.wh, ctx.actor)

    def when(values) -> list[str]:
        return ["" if pd.isna(v) else f"{v:%Y-%m-%d %H:%M}" for v in values]

    shown = frame.assign(
        role=[ctx.t(f"role_{r}") for r in frame["role"]],
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
            format_func=lambda r: ctx.t(f"role_{r}"), key=f"ad_role_{suffix}",
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


def backup_section(ctx: PageContext) -> None:
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
