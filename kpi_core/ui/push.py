"""Push settings (a section of the Alerts page): the channels with their masked addresses, adding
or editing one with the fields of its kind, a test send, and the delivery log with failures
marked.

The work is in `kpi_core.push`; this module draws it. Only admins change channels; everyone who
opens the page sees them and the log (what receivers answered: admins only). Secrets never pass through here: the form takes references
(`${ENV_VAR}`, `${secrets.push.key}`) and the core refuses anything else.
"""

from __future__ import annotations

import hashlib
from datetime import datetime

import pandas as pd
import streamlit as st

from kpi_core import push
from kpi_core.access import can
from kpi_core.messages import Message
from kpi_core.texts import N_
from kpi_core.ui import PageContext
from kpi_core.ui.boundary import guard
from kpi_core.ui.widgets import confirmed, error_text, md

HTTP_KINDS = ("webhook", "dingtalk", "wecom", "slack")
_PLACEHOLDER = {
    "webhook": "https://hooks.example.com/kpi",
    "dingtalk": "https://oapi.dingtalk.com/robot/send?access_token=${secrets.push.dingtalk_token}",
    "wecom": "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=${secrets.push.wecom_key}",
    "slack": "${secrets.push.slack_url}",
}
_FAILED_ROW = "background-color: rgba(255, 75, 75, 0.18)"


def _tag(*parts: object) -> str:
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:10]


def _when(v: object) -> str | None:
    return None if v is None or pd.isna(v) else pd.Timestamp(v).strftime("%Y-%m-%d %H:%M:%S")


# --- frames and small helpers (no streamlit) --------------------------------------------------


def address(ch: push.Channel) -> str:
    """Where a channel sends, as it may be shown."""
    if ch.kind == "email":
        return f"{ch.shown_url()} → {', '.join(push.recipients(ch.options.get('to')))}"
    return ch.shown_url()


# Keys built below as "push_kind_…" / "push_lang_…" / "push_sev_…", written out so that extraction finds them.
_PUSH_KIND_KEYS = (
    N_("push_kind_dingtalk"),
    N_("push_kind_email"),
    N_("push_kind_slack"),
    N_("push_kind_webhook"),
    N_("push_kind_wecom"),
    N_("push_lang_both"),
    N_("push_lang_en"),
    N_("push_lang_zh"),
    N_("push_sev_high"),
    N_("push_sev_low"),
    N_("push_sev_medium"),
)


def listing_frame(
    chans: list[push.Channel], results: dict[str, tuple], ctx: PageContext
) -> pd.DataFrame:
    def last(name: str) -> str | None:
        got = results.get(name)
        if not got:
            return None
        at, ok, error = got
        if ok:
            return f"✔ {_when(at)}"
        return f"✖ {_when(at)} · {failure_text(ctx, error)}"

    return pd.DataFrame(
        {
            ctx.t("push_col_name"): [c.name for c in chans],
            ctx.t("push_col_kind"): [ctx.t(f"push_kind_{c.kind}") for c in chans],
            ctx.t("push_col_address"): [address(c) for c in chans],
            ctx.t("push_col_min"): [ctx.t(f"push_sev_{c.min_severity}") for c in chans],
            ctx.t("push_col_lang"): [ctx.t(f"push_lang_{c.lang}") for c in chans],
            ctx.t("push_col_enabled"): [
                ctx.t("push_on") if c.enabled else ctx.t("push_off") for c in chans
            ],
            ctx.t("push_col_last"): [last(c.name) for c in chans],
        }
    )


def failure_text(ctx: PageContext, failure: Message | str | None) -> str:
    """A delivery's failure in the page's language; a row written before failures were coded
    keeps its English text, shown as it is."""
    if isinstance(failure, Message):
        return failure.render(ctx.lang)
    return "" if failure is None or (isinstance(failure, float) and pd.isna(failure)) else failure


def log_frame(df: pd.DataFrame, ctx: PageContext) -> pd.DataFrame:
    """The delivery log as the page shows it; failures in words the reader can act on."""
    return pd.DataFrame(
        {
            ctx.t("push_col_time"): [_when(v) for v in df["sent_at"]],
            ctx.t("push_col_channel"): df["channel"].astype(str),
            ctx.t("push_col_alert"): [
                ctx.t("push_test_row") if pd.isna(v) else f"#{int(v)}" for v in df["alert_id"]
            ],
            ctx.t("push_col_attempt"): [int(v) for v in df["attempt"]],
            ctx.t("push_col_result"): [
                ctx.t("push_sent") if bool(v) else ctx.t("push_failed") for v in df["ok"]
            ],
            ctx.t("push_col_status"): [None if pd.isna(v) else str(v) for v in df["status"]],
            ctx.t("push_col_error"): [failure_text(ctx, v) or None for v in df["error"]],
        }
    )


def parse_headers(text: str) -> dict[str, str] | str:
    """`Name: value` lines as a dict; the text itself when a line is not of that form (the core
    then says how to write it)."""
    out: dict[str, str] = {}
    for line in (text or "").splitlines():
        if not line.strip():
            continue
        name, sep, value = line.partition(":")
        if not sep or not name.strip():
            return text
        out[name.strip()] = value.strip()
    return out


def headers_text(headers: object) -> str:
    if isinstance(headers, dict):
        return "\n".join(f"{k}: {v}" for k, v in headers.items())
    return str(headers or "")


# --- the section ------------------------------------------------------------------------------


def channels_section(ctx: PageContext) -> None:
    """Push channels: list, editor (admins), test send, delivery log."""
    st.subheader(ctx.t("push_title"))
    st.caption(ctx.t("push_intro"))
    done = st.session_state.pop("push_done", None)
    if done:
        st.success(done)
    with guard(ctx, N_("push_unexpected")):
        chans = push.channels(ctx.wh)
        results = push.last_results(ctx.wh, ctx.actor)
        _listing(ctx, chans, results)
        if not can(ctx.actor, "configure_push"):
            st.info(ctx.t("push_admins_only"))
        else:
            base = _picker(ctx, chans)
            _editor(ctx, base)
    with guard(ctx, "push_unexpected"):
        _log(ctx)


def _listing(ctx: PageContext, chans: list[push.Channel], results: dict[str, tuple]) -> None:
    if not chans:
        st.info(ctx.t("push_none"))
        return
    for c in chans:
        got = results.get(c.name)
        if c.enabled and got and not got[1]:
            st.warning(
                ctx.t("push_last_failed", name=md(c.name), when=_when(got[0]),
                      error=md(failure_text(ctx, got[2])))
            )  # fmt: skip
    st.dataframe(listing_frame(chans, results, ctx), hide_index=True, width="stretch")


def _picker(ctx: PageContext, chans: list[push.Channel]) -> push.Channel | None:
    names = [c.name for c in chans]
    if "push_pick_next" in st.session_state:
        wanted = st.session_state.pop("push_pick_next")
        st.session_state.push_pick = wanted if wanted in names else None
    if st.session_state.get("push_pick") not in [None, *names]:
        st.session_state.push_pick = None
    name = st.selectbox(
        ctx.t("push_pick"),
        [None, *names],
        format_func=lambda n: ctx.t("push_pick_new") if n is None else n,
        key="push_pick",
        width=480,
    )
    return next((c for c in chans if c.name == name), None)


def _init(key: str, value: object) -> None:
    if key not in st.session_state:
        st.session_state[key] = value


# Keys built below as "push_security_…" / "push_url_help_…", written out so that extraction finds them.
_PUSH_SECURITY_KEYS = (
    N_("push_security_none"),
    N_("push_security_ssl"),
    N_("push_security_starttls"),
    N_("push_url_help_dingtalk"),
    N_("push_url_help_slack"),
    N_("push_url_help_webhook"),
    N_("push_url_help_wecom"),
)


def _editor(ctx: PageContext, base: push.Channel | None) -> None:
    p = f"push_{_tag(base.name)}_" if base else "push_new_"
    o = base.options if base else {}
    host, port = push.smtp_address(base.url) if base and base.kind == "email" else ("", 587)
    _init(p + "name", base.name if base else "")
    _init(p + "kind", base.kind if base else "dingtalk")
    _init(p + "url", base.url if base and base.kind != "email" else "")
    _init(p + "secret", o.get("secret", ""))
    _init(p + "keyword", o.get("keyword", ""))
    _init(p + "headers", headers_text(o.get("headers")))
    _init(p + "host", host)
    _init(p + "port", port)
    _init(p + "security", o.get("security", "starttls"))
    _init(p + "user", o.get("user", ""))
    _init(p + "password", o.get("password", ""))
    _init(p + "from", o.get("from", ""))
    _init(p + "to", ", ".join(push.recipients(o.get("to"))))
    _init(p + "lang", base.lang if base else "both")
    _init(p + "sev", base.min_severity if base else "medium")
    _init(p + "enabled", base.enabled if base else True)

    left, right = st.columns([1, 1], gap="medium")
    name = left.text_input(ctx.t("push_name"), key=p + "name").strip()
    kind = right.selectbox(
        ctx.t("push_kind"), list(push.KINDS), format_func=lambda k: ctx.t(f"push_kind_{k}"),
        key=p + "kind",
    )  # fmt: skip
    options: dict = {}
    if kind == "email":
        left, mid, right = st.columns([2, 1, 1], gap="medium")
        host = left.text_input(ctx.t("push_host"), key=p + "host", placeholder="smtp.example.com")
        port = mid.number_input(ctx.t("push_port"), 1, 65535, step=1, key=p + "port")
        options["security"] = right.selectbox(
            ctx.t("push_security"), list(push.SECURITY),
            format_func=lambda s: ctx.t(f"push_security_{s}"), key=p + "security",
        )  # fmt: skip
        left, right = st.columns(2, gap="medium")
        options["user"] = left.text_input(ctx.t("push_user"), key=p + "user")
        options["password"] = right.text_input(
            ctx.t("push_password"), key=p + "password",
            placeholder="${secrets.push.smtp_password}", help=ctx.t("push_secret_help"),
        )  # fmt: skip
        left, right = st.columns([1, 2], gap="medium")
        options["from"] = left.text_input(
            ctx.t("push_from"), key=p + "from", placeholder="kpi@example.com"
        )
        options["to"] = right.text_input(
            ctx.t("push_to"), key=p + "to", help=ctx.t("push_to_help"),
            placeholder="head@example.com, analyst@example.com",
        )  # fmt: skip
        url = push.smtp_url(host or "", int(port)) if (host or "").strip() else ""
    else:
        url = st.text_input(
            ctx.t("push_url"), key=p + "url", placeholder=_PLACEHOLDER[kind],
            help=ctx.t(f"push_url_help_{kind}"),
        ).strip()  # fmt: skip
        if kind == "dingtalk":
            left, right = st.columns(2, gap="medium")
            options["secret"] = left.text_input(
                ctx.t("push_secret"), key=p + "secret",
                placeholder="${secrets.push.dingtalk_secret}", help=ctx.t("push_secret_help"),
            )  # fmt: skip
            options["keyword"] = right.text_input(
                ctx.t("push_keyword"), key=p + "keyword", help=ctx.t("push_keyword_help")
            )
        if kind == "webhook":
            options["headers"] = parse_headers(
                st.text_area(
                    ctx.t("push_headers"),
                    key=p + "headers",
                    height=80,
                    placeholder="Authorization: Bearer ${secrets.push.token}",
                    help=ctx.t("push_headers_help"),
                )  # fmt: skip
            )
    left, mid, right = st.columns([1, 1, 1], gap="medium")
    options["lang"] = left.selectbox(
        ctx.t("push_lang"), list(push.LANGS), format_func=lambda x: ctx.t(f"push_lang_{x}"),
        key=p + "lang",
    )  # fmt: skip
    severity = mid.selectbox(
        ctx.t("push_min_severity"), list(push.SEVERITIES),
        format_func=lambda s: ctx.t(f"push_sev_{s}"), key=p + "sev",
        help=ctx.t("push_min_severity_help"),
    )  # fmt: skip
    enabled = right.toggle(ctx.t("push_enabled"), key=p + "enabled")
    with st.expander(ctx.t("push_secrets_howto_title")):
        st.markdown(ctx.t("push_secrets_howto"))

    options = {k: v for k, v in options.items() if v not in (None, "", {}, [])}
    if kind == "email":
        options["to"] = push.recipients(options.get("to"))
    candidate = push.Channel(name, kind, url, options, severity, enabled)
    problems = candidate.problems()
    if kind == "email" and not url:
        problems.insert(0, Message("pc_no_smtp_host"))
    if problems:
        st.info(
            "\n".join([ctx.t("push_problems"), *(f"- {md(error_text(ctx, q))}" for q in problems)])
        )
    if base and name and name != base.name:
        st.caption(ctx.t("push_save_as", name=name, old=base.name))
    with st.container(horizontal=True):
        save = st.button(
            ctx.t("push_save"), type="primary", icon=":material/save:",
            disabled=bool(problems), key=p + "save",
        )  # fmt: skip
        test = (
            st.button(
                ctx.t("push_test"),
                icon=":material/send:",
                key=p + "test",
                help=ctx.t("push_test_help"),
            )  # fmt: skip
            if base
            else False
        )
        if base and st.button(ctx.t("push_delete"), icon=":material/delete:", key=p + "delete"):
            st.session_state.push_delete_pending = base.name
            st.rerun()
    if save:
        saved = push.save_channel(ctx.wh, ctx.actor, name, kind, url, options, severity, enabled)
        st.session_state.push_done = ctx.t("push_saved", name=saved.name)
        st.session_state.push_pick_next = saved.name
        st.rerun()
    if base and test:
        if candidate != _comparable(base):
            st.caption(ctx.t("push_test_unsaved"))
        with st.spinner(ctx.t("push_testing", name=base.name)):
            d = push.send_test(ctx.wh, base.name)
        st.session_state.push_test_result = (base.name, d, datetime.now())
    _test_result(ctx, base)
    if base and confirmed(
        "push_delete_pending", base.name, ctx.t("push_delete_confirm", name=base.name),
        ctx.t("push_delete_yes"), ctx.t("push_cancel"), p,
    ):  # fmt: skip
        push.delete_channel(ctx.wh, ctx.actor, base.name)
        st.session_state.push_done = ctx.t("push_deleted", name=base.name)
        st.session_state.push_pick_next = None
        st.rerun()


def _comparable(ch: push.Channel) -> push.Channel:
    return push.Channel(ch.name, ch.kind, ch.url, ch.options, ch.min_severity, ch.enabled)


def _test_result(ctx: PageContext, base: push.Channel | None) -> None:
    held = st.session_state.get("push_test_result")
    if not base or not held or held[0] != base.name:
        return
    _, d, _ = held
    if d.ok:
        st.success(ctx.t("push_test_ok", name=md(d.channel), attempts=d.attempts),
                   icon=":material/check:")  # fmt: skip
        # The test message says it too; here for the admin who cannot see the robot's group.
        st.caption(md(push.links_note(ctx.lang)))
    else:
        st.error(
            ctx.t("push_test_failed", name=md(d.channel), attempts=d.attempts,
                  error=md(failure_text(ctx, d.said or d.error)))
        )  # fmt: skip


def _log(ctx: PageContext) -> None:
    st.markdown(f"**{ctx.t('push_log_title')}**")
    df = push.recent_log(ctx.wh, ctx.actor)
    if not len(df):
        st.caption(ctx.t("push_log_none"))
        return
    failed = int((~df["ok"].astype(bool)).sum())
    st.caption(ctx.t("push_log_help", n=len(df), failed=failed))
    frame = log_frame(df, ctx)
    bad = [not bool(v) for v in df["ok"]]
    styled = frame.style.apply(
        lambda row: [_FAILED_ROW if bad[row.name] else ""] * len(row), axis=1
    )
    st.dataframe(styled, hide_index=True, width="stretch")
