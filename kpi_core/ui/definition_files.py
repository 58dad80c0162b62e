"""The TOML round-trip of the profile editor (Upload page) and the source editor (Sources page):
download what is saved or being edited, and open a file into the editor (checked the way
`python -m kpi_core profile|source save` checks it, every problem named with its line)."""

from __future__ import annotations

import hashlib
import re

import streamlit as st

from kpi_core.errors import ScopeError
from kpi_core.ingest import definition_file, profile, sources
from kpi_core.messages import Message
from kpi_core.texts import N_
from kpi_core.ui import PageContext
from kpi_core.ui.widgets import error_text, md


def file_name(name: str) -> str:
    """A file name for a definition's name ('ERP 订单' → 'ERP 订单.toml'; no path separators)."""
    cleaned = re.sub(r'[\\/:*?"<>|\s]+', " ", name).strip() or "definition"
    return cleaned + ".toml"


def download(ctx: PageContext, item: profile.Profile | sources.Source, key: str, label: str):
    """A button that downloads `item` as TOML (no rerun: the page stays as it is); none for a
    user who may not read such definitions (`definition_file.may_read`)."""
    is_profile = isinstance(item, profile.Profile)
    try:
        definition_file.may_read(ctx.actor, "profile" if is_profile else "source")
    except ScopeError:
        return
    text = (definition_file.profile_text if is_profile else definition_file.source_text)(item)
    st.download_button(
        label,
        text.encode("utf-8"),
        file_name=file_name(item.name),
        mime="application/toml",
        icon=":material/download:",
        key=key,
        on_click="ignore",
    )


# Keys built below as "def_open_help_…" / "def_opened_…", written out so that extraction finds them.
_DEF_OPEN_HELP_KEYS = (
    N_("def_open_help_profile"),
    N_("def_open_help_source"),
    N_("def_opened_profile"),
    N_("def_opened_source"),
)


def opened(ctx: PageContext, kind: str, key: str) -> tuple[object | None, str]:
    """The definition of an uploaded TOML file, and a tag of that file (editor widgets keyed by
    it start from the file's settings); (None, "") when no file, or a file with problems (they
    are shown, each with its line)."""
    upload = st.file_uploader(
        ctx.t("def_open"),
        type=["toml"],
        key=key,
        help=ctx.t("def_open_help_" + kind),
    )
    if upload is None:
        return None, ""
    data = upload.getvalue()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        st.error(error_text(ctx, Message("cli_err_not_utf8", file=upload.name)))
        return None, ""
    reader = definition_file.read_profile if kind == "profile" else definition_file.read_source
    try:
        item = reader(text, upload.name, ctx.cat)
    except definition_file.DefinitionError as exc:
        st.error(
            "\n".join(
                [ctx.t("def_refused", file=upload.name)]
                + [f"- {md(error_text(ctx, line))}" for line in exc.lines]
            )
        )
        return None, ""
    st.success(ctx.t("def_opened_" + kind, file=upload.name, name=item.name))
    return item, hashlib.sha256(data).hexdigest()[:10]
