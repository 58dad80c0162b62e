"""Alert texts: a message in both languages from the i18n table, written when first read, numbers the local way."""

from __future__ import annotations

import numpy as np

from kpi_core import i18n
from kpi_core.catalog import Catalog
from kpi_core.library import Kpi


class Text:
    """A message in both languages, written when first read: most conditions found on a
    routine run were raised before, and formatting thousands of numbers twice would be most of
    the run's time."""

    def __init__(self, key: str, values: dict):
        self.key = key
        self.values = values  # plain values, or functions of the language
        self._done: tuple[str, str] | None = None

    def __call__(self) -> tuple[str, str]:
        if self._done is None:
            out = []
            for lang in ("zh", "en"):
                vals = {k: (v(lang) if callable(v) else v) for k, v in self.values.items()}
                out.append(i18n.t(self.key, lang, **vals))
            self._done = (out[0], out[1])
        return self._done


class _Fmt:
    """Messages in both languages from the i18n table, numbers the local way."""

    def __init__(self, cat: Catalog):
        self.cat = cat

    @staticmethod
    def both(key: str, **values) -> Text:
        return Text(key, values)

    def value(self, kpi: Kpi, v: float | None, signed: bool = False):
        def f(lang: str) -> str:
            if v is None or (isinstance(v, float) and np.isnan(v)):
                return "—"
            if signed and kpi.is_percent:  # a change of a percentage is in points
                return f"{float(v) * 100:+.2f}pp"
            text = i18n.format_value(float(v), kpi, lang)
            return f"+{text}" if signed and v >= 0 else text

        return f

    def band(self, kpi: Kpi, low, high):
        return lambda lang: f"{self.value(kpi, low)(lang)} – {self.value(kpi, high)(lang)}"

    def unit(self, unit_id: int):
        return lambda lang: self.cat.units[unit_id].name(lang)

    def kpi(self, kpi: Kpi):
        return lambda lang: kpi.name(lang)

    @staticmethod
    def period(label: str):
        return lambda lang: i18n.period_label(label, lang)

    @staticmethod
    def word(key: str):
        return lambda lang: i18n.t(key, lang)
