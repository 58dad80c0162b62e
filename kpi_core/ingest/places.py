"""Where a value came from, as findings, bindings and records name it: "header C (营业收入)",
"sheet name '2026-09'", "profile 'ERP' measure 2", "sum(金额)".

A place is a `Place`: a `str` holding its English text — so it stays a key of the analyst's
answers (`Binding.key`), a column of the intake's frames and the value `import --json` prints,
byte for byte as before — that also carries its coded message, which a page renders in its own
language (`text`). A column named as the file names it ("C (指标)") is a plain `str`: it holds
no word of ours.
"""

from __future__ import annotations

from kpi_core.messages import Message
from kpi_core.texts import N_


class Place(str):
    """A place's English text, with the coded message it was rendered from (`said`)."""

    said: Message

    def __new__(cls, said: Message) -> Place:
        place = super().__new__(cls, said.render("en"))
        place.said = said
        return place

    def __reduce__(self):  # pickled (a session's state) as the message it was made of
        return (Place, (self.said,))


def said(place: object) -> object:
    """A place as a message's value: its coded message, or the text as the file wrote it."""
    return place.said if isinstance(place, Place) else place


def text(place: object, lang: str) -> str:
    """A place in `lang`; a plain text (a file's own column name) as it is."""
    if isinstance(place, Place):
        return place.said.render(lang)
    return "" if place is None else str(place)


def header(column: str) -> Place:
    """A column whose header names a KPI or a month: "header C (营业收入)"."""
    return Place(Message("ip_header", column=column))


def sheet_name(sheet: str) -> Place:
    return Place(Message("ip_sheet_name", sheet=sheet))


def title(ref: str) -> Place:
    """A title cell above the header ("期间：2024年3月" in B1)."""
    return Place(Message("ip_title", ref=ref))


def section_title(ref: str) -> Place:
    """A row that starts a section of a stacked form ("华东区" in A12)."""
    return Place(Message("ip_section_title", ref=ref))


def profile(name: str) -> Place:
    """Values a mapping profile gave (a profile's one unit for all rows)."""
    return Place(Message("ip_profile", name=name))


def source(name: str) -> Place:
    """Values a database or file source gave."""
    return Place(Message("ip_source", name=name))


def measure(who: str, i: int) -> Place:
    """A profile's or a source's measure `i` (counted from 1)."""
    return Place(Message("ip_measure", who=said(who), i=i))


# A measure's aggregation of a column, as the Column column shows it: "sum(金额)".
_AGGREGATIONS = {
    "sum": N_("ip_sum"),
    "avg": N_("ip_avg"),
    "count": N_("ip_count"),
    "count_distinct": N_("ip_count_distinct"),
}


def aggregated(agg: str, column: str | None) -> Place | str:
    if not column:
        return Place(Message("ip_count_rows"))
    key = _AGGREGATIONS.get(agg)
    return Place(Message(key, column=column)) if key else f"{agg}({column})"
