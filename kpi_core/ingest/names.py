"""KPIs and org units by what people write: code or name, Chinese or English, any case or width."""

from __future__ import annotations

import difflib
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

from kpi_core.catalog import Catalog
from kpi_core.library import Kpi
from kpi_core.messages import Message
from kpi_core.org import Unit


def norm(text: object) -> str:
    """Comparable form: full-width → half-width, lower case, no spaces or underscores."""
    return re.sub(r"[\s_]+", "", unicodedata.normalize("NFKC", str(text)).lower())


@dataclass(frozen=True)
class KpiMatch:
    """What a text names: one KPI by its code, one or several by their name, or none."""

    kpis: tuple[Kpi, ...]
    how: str  # "code", "name", or "" when nothing matches

    @property
    def kpi(self) -> Kpi | None:
        """The KPI, when the text names exactly one."""
        return self.kpis[0] if len(self.kpis) == 1 else None


_NO_MATCH = KpiMatch((), "")


def _code_form(text: object) -> str:
    """A code as typed: any case or width, spaces around it."""
    return unicodedata.normalize("NFKC", str(text)).strip().lower()


class Names:
    """Looks up KPIs and units of a catalog by code, Chinese name or English name."""

    def __init__(self, cat: Catalog):
        self.cat = cat
        self._kpis: dict[str, Kpi] = {}  # for "did you mean"
        self._kpi_codes: dict[str, Kpi] = {}
        self._kpi_names: dict[str, list[Kpi]] = {}
        self._units: dict[str, Unit] = {}
        # Names first, codes last: a code always wins over another KPI's identical name.
        for k in cat.kpis.values():
            for text in (k.name_en, k.name_zh, k.code):
                if text:
                    self._kpis[norm(text)] = k
            self._kpi_codes[norm(k.code)] = k
            # Two KPIs may share a name (each department's "Sales"): both are kept, so the
            # name is a question rather than whichever KPI came last.
            for text in {norm(t) for t in (k.name_en, k.name_zh) if t}:
                self._kpi_names.setdefault(text, []).append(k)
        for u in cat.units.values():
            for text in (u.name_en, u.name_zh, u.code):
                if text:
                    self._units[norm(text)] = u

    def kpi_match(self, text: object) -> KpiMatch:
        if text is None:
            return _NO_MATCH
        key = norm(text)
        code = self._kpi_codes.get(key)
        # "Car sales" is the name of CAR_SALES before it is its code without the underscore.
        if code is not None and _code_form(text) == _code_form(code.code):
            return KpiMatch((code,), "code")
        if key in self._kpi_names:
            return KpiMatch(tuple(self._kpi_names[key]), "name")
        if code is not None:
            return KpiMatch((code,), "code")
        return _NO_MATCH

    def kpi(self, text: object) -> Kpi | None:
        """The one KPI a text names; None when it names none, or several (see `kpi_match`)."""
        return self.kpi_match(text).kpi

    def unit(self, text: object) -> Unit | None:
        return self._units.get(norm(text)) if text is not None else None

    def kpi_hint(self, text: object) -> Message | None:
        return _did_you_mean(text, self._kpis, lambda k: f"{k.code} ({k.name_zh} / {k.name_en})")

    def unit_hint(self, text: object) -> Message | None:
        return _did_you_mean(text, self._units, lambda u: f"{u.code} ({u.name_zh} / {u.name_en})")


def _did_you_mean(text: object, index: dict, show) -> Message | None:
    close = difflib.get_close_matches(norm(text), list(index), n=3, cutoff=0.6)
    shown = list(dict.fromkeys(show(index[c]) for c in close))
    return Message("nm_did_you_mean", choices=either(shown)) if shown else None


def either(choices: Iterable[object]) -> object:
    """Choices said as "A or B or C" ("A 或 B 或 C"): one alone as it is."""
    first, *rest = choices
    return Message("nm_or", first=first, rest=either(rest)) if rest else first
