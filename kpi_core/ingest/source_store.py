"""Saved sources (`source`): the definition a user edits, saved, read back, listed and deleted
(analysts and admins), and the last month a source's pulls brought in."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime

import pandas as pd

from kpi_core import audit
from kpi_core.access import Actor, can
from kpi_core.errors import NotFoundError, ScopeError
from kpi_core.ingest import profile
from kpi_core.ingest.names import norm
from kpi_core.ingest.source_files import SourceError
from kpi_core.ingest.source_urls import (
    check_query,
    check_url,
)
from kpi_core.messages import Items, Message
from kpi_core.references import mask
from kpi_core.warehouse import Warehouse

DEFAULT_ROW_LIMIT = 5_000_000
DEFAULT_TIMEOUT_S = 120


@dataclass
class Source:
    name: str
    url: str  # the password, if any, is a reference (${secrets.source_secrets.x}), never literal
    query: str
    mapping: profile.Profile
    row_limit: int = DEFAULT_ROW_LIMIT
    timeout_s: int = DEFAULT_TIMEOUT_S

    def problems(self, columns: list[str] | None = None) -> list[Message | str]:
        """What keeps the source from being saved or pulled, as messages. With the `columns`
        its query returns (a sample), every column the mapping names must be one of them."""
        out: list[Message | str] = []
        if not self.name.strip():
            out.append(NO_NAME)
        try:
            check_url(self.url)
        except SourceError as exc:
            out.append(exc.said())
        try:
            check_query(self.query, self.url)
        except SourceError as exc:
            out.append(exc.said())
        if columns is not None:
            have = {norm(c) for c in columns}
            for name, what in ((self.mapping.date_column, profile.COLUMN_WORDS["date"]),
                               (self.mapping.unit_column, profile.COLUMN_WORDS["unit"])):  # fmt: skip
                if name and norm(name) not in have:
                    out.append(Message("so_not_in_result", what=what, column=name))
        # A source's mapping is named after the source.
        out += [p for p in self.mapping.problems(columns, from_query=True) if p != profile.NO_NAME]
        if self.row_limit < 1 or self.timeout_s < 1:
            out.append(Message("so_limits"))
        return out


# Its problem when the source has no name (the Sources page and definition files place it).
NO_NAME = Message("so_no_name")


def last_pulled_month(wh: Warehouse, name: str) -> date | None:
    got = wh.one(
        """SELECT max(a.period) FROM actual a JOIN batch b ON b.id = a.batch_id
           WHERE b.kind = 'pull' AND b.source_name = ? AND b.status = 'committed'""",
        [name],
    )
    return got[0] if got else None


# --- saved sources ----------------------------------------------------------------------------


def save(wh: Warehouse, source: Source, who: Actor) -> None:
    if not can(who, "define_sources"):
        raise ScopeError(Message("ss_who_defines"))
    if problems := source.problems():
        raise SourceError(Message("so_not_complete", name=source.name, problems=Items(problems)))
    mapping = json.loads(source.mapping.to_json())
    now = datetime.now()
    with wh.transaction() as cur:
        old = cur.execute("SELECT url, query FROM source WHERE name = ?", [source.name]).fetchall()
        cur.execute(
            "INSERT OR REPLACE INTO source VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [source.name, source.url, source.query, json.dumps(mapping, ensure_ascii=False),
             source.row_limit, source.timeout_s, who.name, now],
        )  # fmt: skip
        audit.record(
            cur, changed_at=now, changed_by=who.name, entity="source", key=source.name,
            field="definition", old=f"{mask(old[0][0])}\n{old[0][1]}" if old else None,
            new=f"{mask(source.url)}\n{source.query}", reason="",
        )  # fmt: skip


def load(wh: Warehouse, name: str) -> Source:
    rows = wh.rows(
        "SELECT name, url, query, mapping, row_limit, timeout_s FROM source WHERE name = ?", [name]
    )
    if not rows:
        known = [r[0] for r in wh.rows("SELECT name FROM source ORDER BY name")]
        if known:
            raise NotFoundError(Message("ss_no_source", name=name, known=Items(known, commas=True)))
        raise NotFoundError(Message("ss_no_source_yet", name=name))
    n, url, query, mapping, row_limit, timeout_s = rows[0]
    return Source(n, url, query, profile.Profile.from_json(mapping), row_limit, timeout_s)


def listing(wh: Warehouse) -> pd.DataFrame:
    """Sources with masked URLs and their last pull."""
    df = wh.df(
        """SELECT s.name, s.url, s.row_limit, s.timeout_s, s.updated_by, s.updated_at,
                  max(b.created_at) AS last_pull
           FROM source s LEFT JOIN batch b ON b.kind = 'pull' AND b.source_name = s.name
                AND b.status = 'committed'
           GROUP BY ALL ORDER BY s.name"""
    )
    df["url"] = df["url"].map(mask)
    return df


def delete(wh: Warehouse, name: str, who: Actor) -> None:
    if not can(who, "define_sources"):
        raise ScopeError(Message("ss_who_defines"))
    with wh.transaction() as cur:
        cur.execute("DELETE FROM source WHERE name = ?", [name])
        audit.record(
            cur, changed_at=datetime.now(), changed_by=who.name, entity="source", key=name,
            field="definition", old="defined", reason="",
        )  # fmt: skip
