"""Alert texts: a key of the i18n table and JSON parameters, stored with the alert and rendered
in the reader's language when read (names and wording as they are then, numbers the local way).

A parameter is a plain value (text or a number shown as it is) or one of these, so that nothing
language-bound is stored:

- `{"unit": id}`, `{"kpi": id}`: the unit's or KPI's name;
- `{"units": [id, …]}`: unit names, listed the language's way;
- `{"kpi": id, "value": x}` (and `"signed": true` for a change): a value as the KPI shows it;
- `{"kpi": id, "band": [low, high]}`: a range of values;
- `{"period": "2026-10"}`: a period label;
- `{"word": key}` (and `"values": {…}` for its own parameters): a phrase of the i18n table.
"""

from __future__ import annotations

import json
import math

from kpi_core import i18n
from kpi_core.catalog import Catalog
from kpi_core.library import Kpi

DASH = "—"


class Text:
    """A message in both languages, written when first read: most conditions found on a
    routine run were raised before, and formatting thousands of numbers twice would be most of
    the run's time."""

    def __init__(self, key: str, params: dict, cat: Catalog):
        self.key = key
        self.params = params  # JSON-able; see the module's docstring
        self.cat = cat
        self._done: tuple[str, str] | None = None

    def __call__(self) -> tuple[str, str]:
        if self._done is None:
            self._done = (
                render(self.key, self.params, "zh", self.cat),
                render(self.key, self.params, "en", self.cat),
            )
        return self._done

    def stored(self) -> str:
        """The parameters as the alert's row keeps them."""
        return json.dumps(self.params, ensure_ascii=False, sort_keys=True)


def render(key: str, params: dict | str, lang: str, cat: Catalog) -> str:
    """The message `key` with its parameters (a dict, or the JSON an alert's row keeps)."""
    if isinstance(params, str):
        params = json.loads(params or "{}")
    return i18n.t(key, lang, **{k: _param(v, lang, cat) for k, v in params.items()})


def _number(v: object) -> float | None:
    if v is None:
        return None
    v = float(v)  # numpy's numbers too
    return None if math.isnan(v) else v


def _value(kpi: Kpi | None, v: float | None, lang: str, signed: bool = False) -> str:
    if v is None:
        return DASH
    if kpi is None:  # a KPI deleted since: the number as it is
        return f"{v:+g}" if signed else f"{v:g}"
    if signed and kpi.is_percent:  # a change of a percentage is in points
        return f"{v * 100:+.2f}pp"
    text = i18n.format_value(v, kpi, lang)
    return f"+{text}" if signed and v >= 0 else text


def _unit(unit_id: int, lang: str, cat: Catalog) -> str:
    unit = cat.units.get(unit_id)
    return unit.name(lang) if unit is not None else f"#{unit_id}"


def _param(v: object, lang: str, cat: Catalog) -> object:
    if not isinstance(v, dict):
        return v
    if "units" in v:
        return ("、" if lang == "zh" else ", ").join(_unit(u, lang, cat) for u in v["units"])
    if "unit" in v:
        return _unit(v["unit"], lang, cat)
    if "period" in v:
        return i18n.period_label(v["period"], lang)
    if "word" in v:
        return i18n.t(v["word"], lang, **v.get("values", {}))
    kpi = cat.kpis.get(v.get("kpi"))
    if "value" in v:
        return _value(kpi, v["value"], lang, bool(v.get("signed")))
    if "band" in v:
        low, high = v["band"]
        return f"{_value(kpi, low, lang)} – {_value(kpi, high, lang)}"
    return kpi.name(lang) if kpi is not None else f"#{v.get('kpi')}"


class _Fmt:
    """The parameters of a message (see the module's docstring) for the detectors."""

    def __init__(self, cat: Catalog):
        self.cat = cat

    def both(self, key: str, **params) -> Text:
        return Text(key, params, self.cat)

    @staticmethod
    def value(kpi: Kpi, v: float | None, signed: bool = False) -> dict:
        out = {"kpi": kpi.id, "value": _number(v)}
        return out | {"signed": True} if signed else out

    @staticmethod
    def band(kpi: Kpi, low, high) -> dict:
        return {"kpi": kpi.id, "band": [_number(low), _number(high)]}

    @staticmethod
    def unit(unit_id: int) -> dict:
        return {"unit": int(unit_id)}

    @staticmethod
    def units(unit_ids) -> dict:
        return {"units": [int(u) for u in unit_ids]}

    @staticmethod
    def kpi(kpi: Kpi) -> dict:
        return {"kpi": kpi.id}

    @staticmethod
    def period(label: str) -> dict:
        return {"period": label}

    @staticmethod
    def word(key: str, **values) -> dict:
        return {"word": key, "values": values} if values else {"word": key}
