"""Charts the pages drew lately, kept with the spec Streamlit made of them (`for_pages`): a page
run that draws the same chart again skips building and validating it.
"""

from __future__ import annotations

import functools
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import altair as alt
import pandas as pd

from kpi_core import settings

P = ParamSpec("P")


C = TypeVar("C", bound=alt.TopLevelMixin)


# Charts the pages drew lately, by builder and inputs (see `for_pages`).
_DRAWN: OrderedDict[tuple, alt.TopLevelMixin] = OrderedDict()


_DRAWN_MAX = 256


_drawn_lock = threading.Lock()


def _content(value: object) -> object:
    """A hashable stand-in for a builder's argument: a frame by its contents, a list by its
    items, anything else as it is (NodeResults by identity: they come from cached results)."""
    if isinstance(value, pd.DataFrame):
        hashed = pd.util.hash_pandas_object(value, index=True).to_numpy().tobytes()
        return ("frame", tuple(value.columns), tuple(map(str, value.dtypes)), hashed)
    if isinstance(value, list | tuple):
        return (type(value).__name__, *(_content(v) for v in value))
    if isinstance(value, dict):
        return ("dict", *sorted((k, _content(v)) for k, v in value.items()))
    hash(value)
    return value


# The data transformer st.altair_chart installs while it turns a chart into a spec (Streamlit 1.67,
# streamlit/elements/vega_charts.py): the spec made under it can be handed out again.
_STREAMLIT_TRANSFORMER = "to_arrow_dataset"


def _spec_once(chart: alt.TopLevelMixin) -> Callable[..., dict]:
    """`chart.to_dict` without validation, and for Streamlit the spec made the first time.

    The spec is made once with Streamlit's own transformer, its data (Arrow bytes named by a
    hash of their contents) put in its `datasets` — where Streamlit looks for datasets a spec
    already carries — so handing it out again draws the same chart with the same data. Any
    other caller (a download as SVG, a test) gets a spec made for it."""
    plain = functools.partial(chart.to_dict, validate=False)
    made: list[dict] = []

    def to_dict(*args: object, **kwargs: object) -> dict:
        if args or kwargs or alt.data_transformers.active != _STREAMLIT_TRANSFORMER:
            return plain(*args, **kwargs)
        if not made:
            datasets: dict = {}
            with alt.data_transformers.enable(_STREAMLIT_TRANSFORMER, datasets=datasets):
                spec = plain()
            spec["datasets"] = {**spec.get("datasets", {}), **datasets}
            made.append(spec)  # complete before anyone else can see it
        return made[0]

    return to_dict


def for_pages(build: Callable[P, C]) -> Callable[P, C]:
    """A chart builder as the pages call it at every run: the same inputs give the chart built
    the first time, and the chart skips Altair's schema validation when it is drawn.

    Building a chart and validating its spec against the Vega-Lite JSON schema was most of a
    chart page's run (Trends: 0.35 s of 0.5 s), for a spec whose shape is the builder's, not
    the data's. With `KPI_VALIDATE_CHARTS=1` (the tests set it) every chart built is validated
    once, so a builder's invalid spec still fails the tests that draw it. Inputs are compared by
    content (frames hashed), so a chart is never one of other data; charts are shared between
    sessions and never changed after.
    """

    @functools.wraps(build)
    def built(*args: P.args, **kwargs: P.kwargs) -> C:
        try:
            key = (build.__qualname__, _content(args), _content(kwargs))
        except TypeError:
            key = None
        if key is not None:
            with _drawn_lock:
                if key in _DRAWN:
                    _DRAWN.move_to_end(key)
                    return _DRAWN[key]  # type: ignore[return-value]
        chart = build(*args, **kwargs)
        if settings.env("KPI_VALIDATE_CHARTS") == "1":
            chart.to_dict(validate=True)
        # Altair's charts keep attributes set on them as chart properties: around it.
        object.__setattr__(chart, "to_dict", _spec_once(chart))
        if key is not None:
            with _drawn_lock:
                _DRAWN[key] = chart
                while len(_DRAWN) > _DRAWN_MAX:
                    _DRAWN.popitem(last=False)
        return chart

    return built
