"""Charts as files: SVG and PNG for exports and pushed messages."""

from __future__ import annotations

import altair as alt


def to_svg(chart: alt.TopLevelMixin, width: int = 900, title: str | None = None) -> str:
    """The chart drawn as SVG on the server (vl-convert, no network): for downloads."""
    import vl_convert

    return vl_convert.vegalite_to_svg(_sized(chart, width, title))


def to_png(
    chart: alt.TopLevelMixin, width: int = 900, title: str | None = None, scale: float = 2.0
) -> bytes:
    import vl_convert

    return vl_convert.vegalite_to_png(_sized(chart, width, title), scale=scale)


def _sized(chart: alt.TopLevelMixin, width: int, title: str | None) -> dict:
    # On a page the chart takes the container's width and the page names it; an image file
    # needs a width in pixels and its own title.
    sized = chart.properties(width=width)
    if title:
        sized = sized.properties(title=alt.Title(title, anchor="start", fontSize=15))
    spec = sized.to_dict()
    spec.setdefault("background", "white")
    return spec
