"""KPIs and org units by what people write: code or name, Chinese or English, any case or width."""

from __future__ import annotations

import difflib
import re
import unicodedata

from kpi_core.catalog import Catalog
from kpi_core.library import Kpi
from kpi_core.org import Unit


def norm(text: object) -> str:
    """Comparable form: full-width → half-width, lower case, no spaces or underscores."""
    return re.sub(r"[\s_]+", "", unicodedata.normalize("NFKC", str(text)).lower())


class Names:
    """Looks up KPIs and units of a catalog by code, Chinese name or English name."""

    def __init__(self, cat: Catalog):
        self.cat = cat
        self._kpis: dict[str, Kpi] = {}
        self._units: dict[str, Unit] = {}
        # Names first, codes last: a code always wins over another KPI's identical name.
        for k in cat.kpis.values():
            for text in (k.name_en, k.name_zh, k.code):
                if text:
                    self._kpis[norm(text)] = k
        for u in cat.units.values():
            for text in (u.name_en, u.name_zh, u.code):
                if text:
                    self._units[norm(text)] = u

    def kpi(self, text: object) -> Kpi | None:
        return self._kpis.get(norm(text)) if text is not None else None

    def unit(self, text: object) -> Unit | None:
        return self._units.get(norm(text)) if text is not None else None

    def kpi_hint(self, text: object) -> str:
        return _did_you_mean(text, self._kpis, lambda k: f"{k.code} ({k.name_zh} / {k.name_en})")

    def unit_hint(self, text: object) -> str:
        return _did_you_mean(text, self._units, lambda u: f"{u.code} ({u.name_zh} / {u.name_en})")


def _did_you_mean(text: object, index: dict, show) -> str:
    close = difflib.get_close_matches(norm(text), list(index), n=3, cutoff=0.6)
    shown = list(dict.fromkeys(show(index[c]) for c in close))
    return f"did you mean {' or '.join(shown)}?" if shown else ""
