"""Alerts page: the list with filters, one alert's acknowledge / comment / action / close, the
review actions (复盘) with the overdue ones flagged, push channels and rule switches.

The work is in `kpi_core.alerts`, `kpi_core.review` and `kpi_core.push`; this module draws it.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from kpi_core import alerts, i18n, people, review
from kpi_core.access import can
from kpi_core.texts import N_
from kpi_core.ui import PageContext
from kpi_core.ui.review import comments_panel
from kpi_core.ui.widgets import error_text, md, missing, or_dash

_SEVERITY_MARK = {"high": "■", "medium": "▲", "low": "●"}


# An alert's row may lack anything but its id: stale data has no KPI and, before its unit has an
# owner, no owner; an alert kept from an older release may name a unit or KPI since deleted.
# Each piece is shown as "—" then, never as an error.


def _kind(ctx: PageContext, kind: object) -> str:
    return "—" if missing(kind) else ctx.t(f"al_kind_{kind}")


def _severity(ctx: PageContext, severity: object) -> str:
    if missing(severity):
        return "—"
    return f"{_SEVERITY_MARK.get(str(severity), '')} {ctx.t(f'al_sev_{severity}')}"


def _state(ctx: PageContext, state: object) -> str:
    return "—" if missing(state) else ctx.t(f"al_state_{state}")


def _unit_id(value: object) -> int | None:
    return None if missing(value) else int(value)


def _unit_name(ctx: PageContext, unit_id: object) -> str:
    uid = _unit_id(unit_id)
    return "—" if uid is None or uid not in ctx.cat.units else ctx.cat.units[uid].name(ctx.lang)


def _period(ctx: PageContext, label: object) -> str:
    return "—" if missing(label) else i18n.period_label(str(label), ctx.lang)


def _message(ctx: PageContext, row: pd.Series) -> str:
    return or_dash(row["message_zh" if ctx.lang == "zh" else "message_en"])


def filters(ctx: PageContext) -> dict[str, list]:
    """Sidebar filters; an empty choice means all."""
    sb = st.sidebar
    owners = _owners(ctx)
    units = [u for root in ctx.cat.scope_roots(ctx.actor.scope) for u in ctx.cat.descendants(root)]
    chosen = {
        "units": sb.multiselect(
            ctx.t("unit"), units, format_func=lambda u: ctx.cat.units[u].name(ctx.lang),
            placeholder=ctx.t("tw_all"), key="al_f_units",
        ),
        "kinds": sb.multiselect(
            ctx.t("al_kind"), list(alerts.KINDS), format_func=lambda k: _kind(ctx, k),
            placeholder=ctx.t("tw_all"), key="al_f_kinds",
        ),
        "severities": sb.multiselect(
            ctx.t("al_severity"), list(alerts.SEVERITIES),
            format_func=lambda s: _severity(ctx, s), placeholder=ctx.t("tw_all"),
            key="al_f_severities",
        ),
        "owners": sb.multiselect(
            ctx.t("owner"), list(owners), placeholder=ctx.t("tw_all"), key="al_f_owners"
        ),
        "states": sb.multiselect(
            ctx.t("al_state"), list(alerts.STATES), default=["open", "acknowledged"],
            format_func=lambda s: _state(ctx, s), key="al_f_states",
        ),
    }  # fmt: skip
    # One entry per person: a user stored by id and by an older release's display name alike.
    chosen["owners"] = [raw for name in chosen["owners"] for raw in owners.get(name, [])]
    return chosen


def _owners(ctx: PageContext) -> dict[str, list[str]]:
    """Owners of alerts inside the user's scope (not the other departments' people), by the
    name shown → the values stored for them."""
    known = people.load(ctx.wh)
    out: dict[str, list[str]] = {}
    for raw in alerts.owners(ctx.wh, ctx.cat, ctx.actor):
        out.setdefault(known.name(raw) or raw, []).append(raw)
    return dict(sorted(out.items()))


def run_button(ctx: PageContext) -> None:
    """Evaluate the rules now (they also run after every import and pull)."""
    if not can(ctx.actor, "act_on_alerts"):
        return
    if st.button(ctx.t("al_run"), icon=":material/refresh:", key="al_run"):
        result = alerts.run(ctx.wh, ctx.actor)
        st.session_state["al_flash"] = ctx.t(
            "al_ran", new=len(result.new), closed=len(result.closed)
        )
        st.rerun()
    if flash := st.session_state.pop("al_flash", None):
        st.success(flash)


def alerts_section(ctx: PageContext, chosen: dict[str, list]) -> None:
    table = alerts.open_alerts(
        ctx.wh, ctx.cat, ctx.actor,
        units=chosen["units"] or None, kinds=chosen["kinds"] or None,
        severities=chosen["severities"] or None, owners=chosen["owners"] or None,
        states=chosen["states"] or None,
    )  # fmt: skip
    counts = table["severity"].value_counts() if not table.empty else pd.Series(dtype=int)
    cols = st.columns(4)
    cols[0].metric(ctx.t("al_count"), len(table))
    for col, sev in zip(cols[1:], alerts.SEVERITIES, strict=True):
        col.metric(_severity(ctx, sev), int(counts.get(sev, 0)))
    if table.empty:
        st.success(ctx.t("al_none"))
        return
    known = people.load(ctx.wh)
    shown = pd.DataFrame(
        {
            ctx.t("al_severity"): [_severity(ctx, s) for s in table["severity"]],
            ctx.t("al_kind"): [_kind(ctx, k) for k in table["kind"]],
            ctx.t("unit"): [_unit_name(ctx, u) for u in table["unit_id"]],
            ctx.t("kpi"): [_kpi_name(ctx, k) for k in table["kpi_id"]],
            ctx.t("period"): [_period(ctx, p) for p in table["period_label"]],
            ctx.t("al_message"): [_message(ctx, r) for _, r in table.iterrows()],
            ctx.t("owner"): [or_dash(_person(known, o)) for o in table["owner"]],
            ctx.t("al_state"): [_state(ctx, s) for s in table["state"]],
            ctx.t("al_raised"): table["raised_at"],
        }
    )
    st.dataframe(
        shown,
        hide_index=True,
        width="stretch",
        height=min(38 + 35 * len(shown), 420),
        # "▲ medium" whole; the message takes the room that is left.
        column_config={
            ctx.t("al_severity"): st.column_config.Column(width=90),
            ctx.t("al_message"): st.column_config.Column(width="large"),
        },
    )
    ids = list(table["id"])
    by_id = table.set_index("id", drop=False)  # one look-up per option, not a scan of the table
    pick = st.selectbox(
        ctx.t("al_pick"),
        ids,
        format_func=lambda i: _label(ctx, by_id.loc[i]),
        key="al_pick",
    )
    _detail(ctx, by_id.loc[pick])


def _kpi_name(ctx: PageContext, kpi_id: object) -> str:
    if missing(kpi_id) or int(kpi_id) not in ctx.cat.kpis:
        return "—"
    return ctx.cat.kpis[int(kpi_id)].name(ctx.lang)


def _label(ctx: PageContext, row: pd.Series) -> str:
    unit = _unit_name(ctx, row["unit_id"])
    what = _kpi_name(ctx, row["kpi_id"])
    month = _period(ctx, row["period_label"])
    return f"#{row['id']} · {_kind(ctx, row['kind'])} · {unit} · {what} · {month}"


def _detail(ctx: PageContext, row: pd.Series) -> None:
    aid = int(row["id"])
    with st.container(border=True):
        st.markdown(f"**{md(_label(ctx, row))}**")
        st.markdown(md(_message(ctx, row)))
        st.caption(
            f"{ctx.t('al_severity')}: {_severity(ctx, row['severity'])} · "
            f"{ctx.t('owner')}: {md(_person(people.load(ctx.wh), row['owner']))} · {ctx.t('al_state')}: "
            f"{_state(ctx, row['state'])}"
        )
        unit_id = _unit_id(row["unit_id"])
        if row["state"] == "closed":
            st.caption(f"{ctx.t('al_resolution')}: {md(row['resolution'])}")
        elif unit_id is not None and can(ctx.actor, "act_on_alerts", unit_id):
            left, right = st.columns(2)
            with left:
                note = st.text_input(ctx.t("al_ack_note"), key=f"al_note_{aid}")
                if row["state"] == "open" and st.button(ctx.t("al_ack"), key=f"al_ack_{aid}"):
                    _act(
                        ctx,
                        lambda: alerts.acknowledge(ctx.wh, ctx.actor, aid, note),
                        N_("al_acked"),
                    )
            with right:
                resolution = st.text_input(ctx.t("al_resolution"), key=f"al_res_{aid}")
                if st.button(ctx.t("al_close"), key=f"al_close_{aid}"):
                    _act(
                        ctx,
                        lambda: alerts.close(ctx.wh, ctx.actor, aid, resolution),
                        N_("al_closed"),
                    )
        if not missing(row["kpi_id"]) and unit_id is not None and not missing(row["period"]):
            period = pd.Timestamp(row["period"]).date()
            st.markdown(f"**{ctx.t('al_review')}**")
            comments_panel(
                ctx, int(row["kpi_id"]), int(row["unit_id"]), period, alert_id=aid,
                key=f"al_rv_{aid}",
            )  # fmt: skip


def _person(known: people.People, ref: object) -> str | None:
    """A person as every surface shows them: the user's display name, or the text as stored."""
    return None if missing(ref) else known.name(str(ref))


def _act(ctx: PageContext, action, done_key: str) -> None:
    try:
        action()
    except alerts.AlertError as exc:
        st.error(error_text(ctx, exc))
        return
    st.session_state["al_flash"] = ctx.t(done_key)
    st.rerun()


def actions_section(ctx: PageContext) -> None:
    """Open review actions, soonest due first; overdue ones flagged."""
    actions = review.open_actions(ctx.wh, ctx.cat, ctx.actor)
    if actions.empty:
        st.info(ctx.t("al_no_actions"))
        return
    overdue = int(actions["overdue"].sum())
    if overdue:
        st.error(ctx.t("al_overdue_n", n=overdue))
    known = people.load(ctx.wh)
    shown = pd.DataFrame(
        {
            ctx.t("al_state"): [
                "■ " + ctx.t("al_kind_overdue") if o else "● " + ctx.t("al_state_open")
                for o in actions["overdue"]
            ],
            ctx.t("unit"): [ctx.cat.units[u].name(ctx.lang) for u in actions["unit_id"]],
            ctx.t("kpi"): [_kpi_name(ctx, k) for k in actions["kpi_id"]],
            ctx.t("al_action"): actions["action"],
            ctx.t("owner"): [or_dash(_person(known, o)) for o in actions["owner"]],
            ctx.t("al_due"): actions["due"],
            ctx.t("al_comment"): actions["text"],
        }
    )
    st.dataframe(shown, hide_index=True, width="stretch")
    if not can(ctx.actor, "act_on_alerts"):
        return
    pick = st.selectbox(
        ctx.t("al_pick_action"),
        list(actions["id"]),
        format_func=lambda i: f"#{i} · {actions.loc[actions['id'] == i, 'action'].iloc[0]}",
        key="al_action_pick",
    )
    resolution = st.text_input(ctx.t("al_resolution"), key="al_action_res")
    if st.button(ctx.t("al_close_action"), key="al_action_close"):
        try:
            review.close_action(ctx.wh, ctx.actor, int(pick), resolution)
        except review.CommentError as exc:
            st.error(error_text(ctx, exc))
        else:
            st.session_state["al_flash"] = ctx.t("al_action_closed")
            st.rerun()


# A rule's settings by type: severities are picked, numbers typed within sensible bounds.
_MIN = {"trend_months": 2, "min_points": 2, "years": 1, "min_years": 1, "min_history": 2}
_SEVERITY_FIELDS = ("red", "amber", "severity")


# Keys built below as "al_param_…", written out so that extraction finds them.
_AL_PARAM_KEYS = (
    N_("al_param_amber"),
    N_("al_param_amber_help"),
    N_("al_param_grace_days"),
    N_("al_param_grace_days_help"),
    N_("al_param_mad_floor"),
    N_("al_param_mad_floor_help"),
    N_("al_param_medium_z"),
    N_("al_param_medium_z_help"),
    N_("al_param_min_history"),
    N_("al_param_min_history_help"),
    N_("al_param_min_points"),
    N_("al_param_min_points_help"),
    N_("al_param_min_years"),
    N_("al_param_min_years_help"),
    N_("al_param_phased"),
    N_("al_param_phased_help"),
    N_("al_param_red"),
    N_("al_param_red_help"),
    N_("al_param_severity"),
    N_("al_param_severity_help"),
    N_("al_param_threshold"),
    N_("al_param_threshold_help"),
    N_("al_param_trend_months"),
    N_("al_param_trend_months_help"),
    N_("al_param_years"),
    N_("al_param_years_help"),
)


def _setting_text(ctx: PageContext, name: str, value: object) -> str:
    if isinstance(value, bool):
        shown = ctx.t("al_yes") if value else ctx.t("al_no")
    elif name in _SEVERITY_FIELDS:
        shown = _severity(ctx, str(value)).strip()
    else:
        shown = f"{value:g}" if isinstance(value, float) else str(value)
    return f"{ctx.t(f'al_param_{name}')}{'：' if ctx.lang == 'zh' else ': '}{shown}"


def _setting_input(ctx: PageContext, kind: str, name: str, value: object) -> object:
    label, help_ = ctx.t(f"al_param_{name}"), ctx.t(f"al_param_{name}_help")
    key = f"al_rp_{kind}_{name}"
    if isinstance(value, bool):
        return st.toggle(label, value=value, help=help_, key=key)
    if name in _SEVERITY_FIELDS:
        options = list(alerts.SEVERITIES)
        return st.selectbox(
            label, options, index=options.index(value), help=help_, key=key,
            format_func=lambda s: _severity(ctx, s),
        )  # fmt: skip
    if isinstance(value, int):
        return int(
            st.number_input(
                label, min_value=_MIN.get(name, 0), value=value, step=1, help=help_, key=key
            )  # fmt: skip
        )
    return float(
        st.number_input(
            label,
            min_value=0.0,
            value=float(value),
            step=0.1 if value >= 1 else 0.005,
            format="%g",
            help=help_,
            key=key,
        )  # fmt: skip
    )


def rules_section(ctx: PageContext) -> None:
    """The rules with their settings; admins switch them on or off and change settings."""
    rules = alerts.load_rules(ctx.wh)
    rows = []
    for kind in alerts.KINDS:
        rule = getattr(rules, kind)
        params = {k: v for k, v in vars(rule).items() if k != "enabled"}
        rows.append(
            {
                ctx.t("al_kind"): _kind(ctx, kind),
                ctx.t("al_enabled"): rule.enabled,
                ctx.t("al_settings"): ("；" if ctx.lang == "zh" else "; ").join(
                    _setting_text(ctx, k, v) for k, v in params.items()
                ),
            }
        )
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
    if not can(ctx.actor, "edit_alert_rules"):
        return
    kind = st.selectbox(
        ctx.t("al_kind"), list(alerts.KINDS), format_func=lambda k: _kind(ctx, k), key="al_rk"
    )
    rule = getattr(rules, kind)
    with st.form(f"al_rule_{kind}", border=True):
        enabled = st.toggle(ctx.t("al_enabled"), value=rule.enabled, key=f"al_re_{kind}")
        params = {
            name: _setting_input(ctx, kind, name, value)
            for name, value in vars(rule).items()
            if name != "enabled"
        }
        saved = st.form_submit_button(ctx.t("tw_save"), key="al_rule_save")
    if saved:
        try:
            alerts.save_rule(ctx.wh, ctx.actor, kind, enabled=enabled, params=params)
        except alerts.AlertError as exc:
            st.error(error_text(ctx, exc))
        else:
            st.session_state["al_flash"] = ctx.t("al_rule_saved")
            st.rerun()
