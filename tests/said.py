"""Is what the core says said in Chinese? The checks that every message a test meets can be
shown on a Chinese page.

A coded message (an error's, a problem's, a finding's) is rendered from both catalogs, so a key
missing from either fails here with a KeyError naming it; its Chinese must hold Chinese. Plain
English text (a message not coded) has no Chinese at all, and fails.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from kpi_core.errors import KpiError
from kpi_core.ingest import places
from kpi_core.messages import Message

CJK = re.compile(r"[\u3400-\u9fff]")


def chinese(said: KpiError | Message | str) -> str:
    """What a Chinese page shows for `said`."""
    if isinstance(said, KpiError):
        said = said.said()
    said = places.said(said)  # where a value came from: its coded message
    if isinstance(said, Message):
        said.render("en")  # a key the English catalog lacks fails too
        return said.render("zh")
    return said  # not coded: a Chinese page would show it as it is


def untranslated(said: Iterable[KpiError | Message | str]) -> list[str]:
    """The English of each message in `said` that a Chinese page would show in English."""
    out = []
    for s in said:
        if not str(s):
            continue
        zh = chinese(s)
        if zh == str(s) or not CJK.search(zh):
            out.append(str(s))
    return out
