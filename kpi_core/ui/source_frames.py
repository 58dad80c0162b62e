"""What the Sources page shows of its sources, as plain frames and texts (no streamlit): the list,
the cautions, the query a table picked in the browser makes, the columns a mapping reads, the
months a pull may ask for.
"""

from __future__ import annotations

import re
from datetime import date

import pandas as pd

from kpi_core import i18n
from kpi_core.ingest import profile, sources
from kpi_core.ingest.names import norm
from kpi_core.texts import N_

_SIMPLE = re.compile(r"[a-z_][a-z0-9_]*")


def listing_frame(df: pd.DataFrame, lang: str) -> pd.DataFrame:
    """The saved sources as the page lists them: URLs masked (the core masks them)."""

    def t(key: str) -> str:
        return i18n.t(key, lang)

    def when(v: object) -> str | None:
        return None if v is None or pd.isna(v) else pd.Timestamp(v).strftime("%Y-%m-%d %H:%M")

    return pd.DataFrame(
        {
            t("src_col_name"): df["name"].astype(str),
            t("src_col_url"): df["url"].astype(str),
            t("src_col_rows"): [f"{int(v):,}" for v in df["row_limit"]],
            t("src_col_seconds"): [t("src_seconds").format(n=int(v)) for v in df["timeout_s"]],
            t("src_col_by"): df["updated_by"].astype(str),
            t("src_col_changed"): [when(v) for v in df["updated_at"]],
            t("src_col_last_pull"): [when(v) for v in df["last_pull"]],
        }
    )


# Keys built below as "src_caution_…", written out so that extraction finds them.
_SRC_CAUTION_KEYS = (
    N_("src_caution_creates"),
    N_("src_caution_server_files"),
    N_("src_caution_superuser"),
    N_("src_caution_writes"),
)


def caution_text(caution: sources.Caution, lang: str) -> str:
    """What Test connection found the account could do beyond reading, in the page's language."""
    return i18n.t(f"src_caution_{caution.code}", lang).format(names=", ".join(caution.names))


def identifier(name: str, url: str) -> str:
    """A table's name as it goes into `SELECT * FROM …`: quoted where the database would fold
    or refuse it (capitals, Chinese, spaces); schema-qualified names part by part."""
    mysql = url.split(":", 1)[0].split("+", 1)[0].lower() in ("mysql", "mariadb")

    def quote(part: str) -> str:
        if _SIMPLE.fullmatch(part):
            return part
        return f"`{part.replace('`', '``')}`" if mysql else '"' + part.replace('"', '""') + '"'

    return ".".join(quote(p) for p in name.split("."))


def select_all(table: str, url: str) -> str:
    """The query the page writes when a table is picked: the analyst's to edit; the core runs
    it read-only, with its limits."""
    return f"SELECT * FROM {identifier(table, url)}"  # noqa: S608 - a query text for the editor


def query_table(query: str, tables: dict[str, list[str]], url: str) -> str | None:
    """The table a `SELECT * FROM table` query reads, if the page can tell."""
    for name in tables:
        pattern = r"\s*SELECT\s+\*\s+FROM\s+" + re.escape(identifier(name, url)) + r"\s*;?\s*"
        if re.fullmatch(pattern, query, re.I):
            return name
    return None


def mapped_columns(m: profile.Profile | None) -> list[str]:
    """The columns a saved mapping reads, so it can be edited before the source is reached."""
    if m is None:
        return []
    names = [m.date_column, m.unit_column]
    for x in m.measures:
        names += x.columns() + [f.column for f in x.filters]
    out: list[str] = []
    for n in names:
        if n and norm(n) not in {norm(o) for o in out}:
            out.append(n)
    return out


def month_choices(today: date, back: int = 60) -> list[date]:
    """Months to pick a range from, newest first: this month and the `back` before it."""
    k = today.year * 12 + today.month - 1
    return [date((k - i) // 12, (k - i) % 12 + 1, 1) for i in range(back)]


def next_month(m: date) -> date:
    return date(m.year + m.month // 12, m.month % 12 + 1, 1)


def month_text(m: date, lang: str) -> str:
    return i18n.period_label(f"{m:%Y-%m}", lang)
