"""The big screen's slides: each one block of HTML for a wall read from metres away, sized in
vmin so that 1920×1080 and 3840×2160 show the same layout (the smallest text is 2.4vmin: 26 px
at 1080p). `render` picks the slide from the clock (every screen on the same URL shows the same
slide). Plain Python: the page that draws them is `kpi_core.ui.wall`.
"""

from __future__ import annotations

import math
import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime
from html import escape

from kpi_core import i18n, kiosk, screen
from kpi_core.screen import SLIDES, ScreenData, Snapshot
from kpi_core.texts import N_

BG = "#0b0f14"


STATUS_TEXT = {"green": "#7ee2a8", "amber": "#ffd166", "red": "#ffaaa0", "grey": "#d0d7de"}


STATUS_CHIP = {"green": "#13261b", "amber": "#2a2410", "red": "#2e1512", "grey": "#1c2128"}


STATUS_BAR = {"green": "#2e9d5f", "amber": "#d9a21b", "red": "#e0524a", "grey": "#6b7785"}


# The colour of a freshness state's chip; its text leads with a shape (● ○ ◐ ■) as well.
FRESH_STATUS = {"up_to_date": "green", "due": "grey", "partial": "amber", "overdue": "red"}


# Rows per page of each slide: what fits 81vmin of slide with the sizes in CSS below.
PER_PAGE = {"company": 1, "departments": 8, "risks": 7, "matrix": 12, "freshness": 9}


@dataclass(frozen=True)
class Params:
    token: str | None
    rotate: int
    refresh: int
    units: tuple[str, ...]
    lang: str
    slides: tuple[str, ...]


def _int(value: str | None, default: int, low: int) -> int:
    try:
        return max(low, int(value)) if value else default
    except ValueError:
        return default


def _list(value: str | None) -> tuple[str, ...]:
    return tuple(p.strip() for p in (value or "").split(",") if p.strip())


def read_params(query, kiosk_screen: kiosk.Screen | None = None) -> Params:
    """The URL's parameters over the screen's own settings (the defaults for a signed-in
    preview). Units in the URL can only narrow the screen's units (screen.kiosk_units)."""
    base = kiosk_screen
    lang = query.get("lang")
    return Params(
        token=query.get("token"),
        rotate=_int(query.get("rotate"), base.rotate if base else 30, kiosk.MIN_ROTATE),
        refresh=_int(query.get("refresh"), base.refresh if base else 60, kiosk.MIN_REFRESH),
        units=tuple(u.upper() for u in _list(query.get("units"))),
        lang=lang if lang in i18n.LANGS else base.lang if base else "zh",
        slides=tuple(s for s in _list(query.get("slides")) if s in SLIDES)
        or (base.slides if base else ()),
    )


# --- text helpers ------------------------------------------------------------------------------


def _width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def clip(text: str, width: int) -> str:
    """At most `width` columns (a CJK character is two), ending in … when cut: the wall never
    clips text mid-glyph, and a cell is sized for `width` columns."""
    if _width(text) <= width:
        return text
    out, used = [], 1
    for ch in text:
        w = _width(ch)
        if used + w > width:
            break
        out.append(ch)
        used += w
    return "".join(out).rstrip() + "…"


def e(text: object) -> str:
    return escape(str(text))


def chip(status: str, lang: str, label: str | None = None, cls: str = "") -> str:
    word = label if label is not None else i18n.status_label(status, lang)
    return (
        f'<span class="bs-chip {cls}" style="color:{STATUS_TEXT[status]};'
        f'background:{STATUS_CHIP[status]}">{e(word)}</span>'
    )


def clock_text(now: datetime, lang: str) -> tuple[str, str]:
    if lang == "zh":
        return now.strftime(
            "%H:%M"
        ), f"{now.year}年{now.month}月{now.day}日 星期{'一二三四五六日'[now.weekday()]}"
    return now.strftime("%H:%M"), now.strftime("%a %d %b %Y")


def _score(x: float | None) -> str:
    return "—" if x is None else f"{x:.1f}"


# --- slides ------------------------------------------------------------------------------------


def pages(data: ScreenData, wanted: tuple[str, ...] = ()) -> list[tuple[str, int, int]]:
    """(slide, page, pages) in showing order; long lists split evenly over pages."""
    sizes = {
        "company": len(data.companies),
        "departments": len(data.departments),
        "risks": max(1, len(data.risks)),
        "matrix": 0,  # packed by blocks: matrix_pages
        "freshness": len(data.freshness),
    }
    out = []
    for slide in data.slides(wanted or None):
        n = (
            len(matrix_pages(data.matrix))
            if slide == "matrix"
            else max(1, math.ceil(sizes[slide] / PER_PAGE[slide]))
        )
        out += [(slide, i, n) for i in range(n)]
    return out


def _chunk(items, i: int, n: int):
    size = math.ceil(len(items) / n) if items else 0
    return items[i * size : (i + 1) * size]


def company_slide(data: ScreenData, i: int, n: int) -> str:
    lang, t = data.lang, lambda k, **v: i18n.t(k, data.lang, **v)
    c = data.companies[i]
    delta = ""
    if c.score is not None and c.previous_score is not None:
        change = f"{c.score - c.previous_score:+.1f}"
        delta = (
            t("bs_vs_month", delta=change, month=c.previous_month)
            if c.previous_month
            else t("bs_vs_prev", delta=change)
        )
    cover = t("bs_coverage", pct=f"{(c.coverage or 0) * 100:.0f}%")
    counts = "".join(
        f'<div class="bs-count bs-panel" style="color:{STATUS_TEXT[s]}">'
        f'<span class="n">{value}</span><span class="l">{e(label)}</span></div>'
        for s, value, label in (
            ("red", c.counts.get("red", 0), i18n.status_label("red", lang)),
            ("amber", c.counts.get("amber", 0), i18n.status_label("amber", lang)),
            ("green", c.counts.get("green", 0), i18n.status_label("green", lang)),
            ("amber", c.at_risk, f"⚠ {t('bs_forecast_miss')}"),
        )
    )
    top = max([s for _, s, _ in c.trend if s is not None] or [100.0])
    bars = "".join(
        # The light's shape beside the score: the bar's colour is never the only signal.
        f'<div class="col"><span class="v">{i18n.STATUS_ICON[status]} {_score(s)}</span>'
        f'<div class="bar" style="height:{0 if s is None else max(4, 100 * s / top) * 0.62:.1f}%;'
        f'background:{STATUS_BAR[status]}"></div><span class="m">{e(m)}</span></div>'
        for m, s, status in c.trend
    )
    return (
        f'<div class="bs-company"><div class="left">'
        f'<div class="bs-name">{e(clip(c.name, 64))}</div>'
        f'<div class="bs-sub">{e(t("bs_company"))} · {e(data.period)}</div>'
        f'<div class="bs-score" style="color:{STATUS_TEXT[c.status]}">{_score(c.score)}</div>'
        f"{chip(c.status, lang, cls='bs-big-chip')}"
        f'<div class="bs-sub">{e(delta)}</div><div class="bs-sub">{e(cover)}</div></div>'
        f'<div class="right"><div class="bs-counts">{counts}</div>'
        f'<div class="bs-h">{e(t("bs_trend", n=len(c.trend)))}</div>'
        f'<div class="bs-trend">{bars}</div></div></div>'
    )


def departments_slide(data: ScreenData, i: int, n: int) -> str:
    rows = list(data.departments)
    start = i * math.ceil(len(rows) / n)
    top = max([d.score for d in rows if d.score is not None] or [100.0])
    out = []
    for rank, d in enumerate(_chunk(rows, i, n), start=start + 1):
        width = 0 if d.score is None else max(2.0, 100 * d.score / top)
        out.append(
            f'<div class="bs-dept"><span class="rank">{rank}</span>'
            f'<span class="bs-cell">{e(clip(d.name, 22))}</span>'
            f'<div class="track"><div class="fill" style="width:{width:.1f}%;'
            f'background:{STATUS_BAR[d.status]}"></div></div>'
            f'<span class="num" style="color:{STATUS_TEXT[d.status]}">{_score(d.score)}</span>'
            f"<span>{chip(d.status, data.lang)}</span></div>"
        )
    return f'<div class="bs-rows">{"".join(out)}</div>'


def risks_slide(data: ScreenData, i: int, n: int) -> str:
    t = lambda k, **v: i18n.t(k, data.lang, **v)  # noqa: E731
    if not data.risks:
        return f'<div class="bs-message"><h1>{e(t("bs_no_risks"))}</h1></div>'
    head = "".join(
        f'<span class="bs-th">{e(t(k))}</span>'
        for k in (
            N_("bs_col_status"),
            N_("bs_col_kpi"),
            N_("bs_col_value"),
            N_("bs_col_owner"),
            N_("bs_col_action"),
        )
    )
    cells = []
    for r in _chunk(list(data.risks), i, n):
        # A row about the year-end forecast says so, not only "at risk" (预警 reads as "alert").
        label = f"⚠ {t('bs_forecast_miss')}" if r.at_risk and r.status != "red" else None
        status = "amber" if label and r.status == "green" else r.status
        if r.actions:
            a = r.actions[0]
            when = "" if a.due is None else t("bs_due", date=f"{a.due.month}/{a.due.day}")
            if a.overdue:
                when = f"■ {t('bs_overdue')} · {when}"
            more = f" · {t('bs_more_actions', n=len(r.actions) - 1)}" if len(r.actions) > 1 else ""
            action = (
                f'<span class="main">{e(clip(a.text, 22))}</span>'
                f'<span class="minor">{e(clip(f"{a.owner} · {when}{more}", 30))}</span>'
            )
        else:
            action = f'<span class="main" style="color:#c9d1d9">{e(t("bs_no_action"))}</span>'
        cells.append(
            f'<span class="bs-cell">{chip(status, data.lang, label)}</span>'
            f'<span class="bs-cell"><span class="main">{e(clip(r.kpi, 30))}</span>'
            f'<span class="minor">{e(clip(r.unit, 34))}</span></span>'
            f'<span class="bs-cell"><span class="main">{e(clip(r.actual, 20))}</span>'
            f'<span class="minor">{e(clip(r.target, 24))}</span></span>'
            f'<span class="bs-cell"><span class="main">{e(clip(r.owner, 20))}</span></span>'
            f'<span class="bs-cell">{action}</span>'
        )
    return f'<div class="bs-table bs-risks">{head}{"".join(cells)}</div>'


# The status matrix: one block per department (kpi_core.screen.matrix_blocks), never split
# over slides. KPI columns are as wide as the slide allows; their heads take up to three lines
# of 2.4vmin text, and a name that does not fit is abbreviated and explained once below.
SLIDE_VMIN = 171.0  # a 16:9 slide's width inside its padding


UNIT_VMIN = 34.0  # the unit column, at least


COL_MAX_VMIN = 24.0


COL_GAP_VMIN = 1.0


HEAD_FONT_VMIN = 2.4


HEAD_LINES = 3


MATRIX_ROOM_VMIN = 60.0  # slide height for blocks; the legend below takes the rest


def column_vmin(n: int) -> float:
    return min(COL_MAX_VMIN, (SLIDE_VMIN - UNIT_VMIN) / max(n, 1) - COL_GAP_VMIN)


def _text_vmin(text: str, font: float = HEAD_FONT_VMIN) -> float:
    """A generous estimate of the width of `text` set at `font` vmin (CJK full width)."""
    em = 0.0
    for ch in text:
        if unicodedata.east_asian_width(ch) in "WF":
            em += 1.0
        elif ch == " ":
            em += 0.3
        elif ch.isupper() or ch in "mwMW@%&":
            em += 0.72
        else:
            em += 0.56
    return em * font


def head_lines(text: str, width: float) -> float:
    """Lines `text` takes in a column `width` vmin wide, breaking as a browser does: between
    words, after a hyphen, between CJK characters; inf when a word alone is wider."""
    tokens = re.findall(r"[\u2e80-\u9fff\uff00-\uffef]|[^\s\u2e80-\u9fff\uff00-\uffef-]+-?|-", text)
    lines, used, prev = 1, 0.0, ""
    for tok in tokens:
        w = _text_vmin(tok)
        if w > width:
            return math.inf
        gap = _text_vmin(" ") if used and tok.isascii() and not prev.endswith("-") else 0.0
        if used + gap + w > width:
            lines, used = lines + 1, w
        else:
            used += gap + w
        prev = tok
    return lines


def abbreviation(name: str, code: str, width: float) -> str:
    """A short form of a KPI name for a column head: the KPI's code where it fits (OEE, AVAIL),
    else the initials of an English name of several words (Unit manufacturing cost → UMC), a
    long word cut with a full stop, else the code cut."""
    words = [w for w in re.split(r"[\s\-/]+", name) if w]
    if _text_vmin(code) <= width:
        short = code
    elif name.isascii() and len(words) > 1:
        short = "".join(w[0] for w in words if w[0].isalnum()).upper()
    elif name.isascii() and words:
        short = name
        while len(short) > 2 and _text_vmin(short + ".") > width:
            short = short[:-1]
        short += "."
    else:
        short = code
    return short if _text_vmin(short) <= width else clip(short, max(2, int(width / 1.8)))


def matrix_heads(block: screen.MatrixBlock, width: float) -> list[str]:
    """Each column's head: its KPI's name where it fits, else a distinct abbreviation."""
    out: list[str] = []
    for c in block.columns:
        label = (
            c.name
            if head_lines(c.name, width) <= HEAD_LINES
            else abbreviation(c.name, c.code, width)
        )
        base, k = label, 2
        while label in out:
            label, k = f"{base}{k}", k + 1
        out.append(label)
    return out


def _block_vmin(block: screen.MatrixBlock) -> float:
    width = column_vmin(len(block.columns))
    lines = max([min(HEAD_LINES, head_lines(h, width)) for h in matrix_heads(block, width)] or [1])
    rows = sum(5.4 if _unit_lines(block, r) == 1 else 9.4 for r in block.rows)
    return 5.2 + lines * HEAD_FONT_VMIN * 1.5 + 1.0 + rows + 2.0


def _unit_room(block: screen.MatrixBlock, depth: int) -> int:
    """Display columns (a CJK character is two) of 2.8vmin text on one line of a unit's cell."""
    unit_vmin = SLIDE_VMIN - len(block.columns) * (column_vmin(len(block.columns)) + COL_GAP_VMIN)
    return int((unit_vmin - 2.8 * depth) / 1.55)


def _unit_lines(block: screen.MatrixBlock, row: screen.MatrixRow) -> int:
    return 1 if _width(row.unit) <= _unit_room(block, row.depth) else 2


def matrix_pages(blocks: tuple[screen.MatrixBlock, ...]) -> list[list[screen.MatrixBlock]]:
    """Blocks packed onto slides in order, each whole on one slide; a block taller than a
    slide (more units than fit) is cut into parts, each with the column heads."""
    parts: list[screen.MatrixBlock] = []
    for b in blocks:
        room = int((MATRIX_ROOM_VMIN - 20) // 9.4)  # rows of two lines under three-line heads
        n = max(1, math.ceil(len(b.rows) / max(room, 1)))
        for i in range(n):
            rows = b.rows[i * math.ceil(len(b.rows) / n) : (i + 1) * math.ceil(len(b.rows) / n)]
            title = b.title if n == 1 else f"{b.title} ({i + 1}/{n})"
            parts.append(screen.MatrixBlock(title, b.columns, rows))
    out: list[list[screen.MatrixBlock]] = []
    used = math.inf
    for b in parts:
        h = _block_vmin(b)
        if used + h > MATRIX_ROOM_VMIN:
            out.append([])
            used = 0.0
        out[-1].append(b)
        used += h
    return out


def _matrix_block(block: screen.MatrixBlock, lang: str, shorts: dict[str, str]) -> str:
    width = column_vmin(len(block.columns))
    heads = matrix_heads(block, width)
    for c, h in zip(block.columns, heads, strict=True):
        if h != c.name:
            shorts[h] = c.name
    cells = ['<span class="bs-mcorner"></span>'] + [
        f'<span class="bs-mhead" title="{e(c.name)}">{e(h)}</span>'
        for c, h in zip(block.columns, heads, strict=True)
    ]
    for k, r in enumerate(block.rows):
        # The block's own unit is named in its title: its row is its own KPIs. Others take up
        # to two lines (the packing counts them so).
        name = i18n.t("bs_matrix_own", lang) if k == 0 and r.unit == block.title else r.unit
        name = clip(name, 2 * _unit_room(block, r.depth) - 4)
        pad = f"padding-left:{2.8 * r.depth:.1f}vmin"
        cells.append(f'<span class="bs-cell bs-munit" style="{pad}">{e(name)}</span>')
        for s in r.cells:
            cells.append(
                '<span class="bs-mcell"><span class="bs-none">–</span></span>'
                if s is None
                else f'<span class="bs-mcell"><span class="bs-glyph" style="color:{STATUS_TEXT[s]};'
                f'background:{STATUS_CHIP[s]}">{i18n.STATUS_ICON[s]}</span></span>'
            )
    columns = f"minmax(0, 1fr) repeat({len(block.columns)}, {width:.2f}vmin)"
    return (
        f'<div class="bs-mblock"><div class="bs-mtitle">{e(block.title)}</div>'
        f'<div class="bs-mgrid" style="grid-template-columns:{columns}">{"".join(cells)}</div></div>'
    )


def matrix_slide(data: ScreenData, i: int, n: int) -> str:
    shorts: dict[str, str] = {}
    blocks = "".join(_matrix_block(b, data.lang, shorts) for b in matrix_pages(data.matrix)[i])
    legend = "".join(
        f'<span style="color:{STATUS_TEXT[s]}">{e(i18n.status_label(s, data.lang))}</span>'
        for s in ("red", "amber", "green", "grey")
    )
    legend += f"<span>– {e(i18n.t('bs_matrix_none', data.lang))}</span>"
    said = ""
    if shorts:
        eq = "：" if data.lang == "zh" else " = "
        said = (
            '<div class="bs-abbr">'
            + ("；" if data.lang == "zh" else " · ").join(
                f"<b>{e(k)}</b>{eq}{e(v)}" for k, v in shorts.items()
            )
            + "</div>"
        )
    return (
        f'<div class="bs-matrix">{blocks}</div>'
        f'<div class="bs-mfoot">{said}<div class="bs-legend">{legend}</div></div>'
    )


def freshness_slide(data: ScreenData, i: int, n: int) -> str:
    t = lambda k: i18n.t(k, data.lang)  # noqa: E731
    head = "".join(
        f'<span class="bs-th">{e(t(k))}</span>'
        for k in (N_("bs_col_unit"), N_("bs_col_latest"), "bs_col_status")
    )
    cells = "".join(
        f'<span class="bs-cell">{e(clip(f.unit, 24))}</span><span class="bs-cell">{e(f.latest)}</span>'
        f'<span class="bs-cell">{chip(FRESH_STATUS[f.state], data.lang, clip(f.text, 30))}</span>'
        for f in _chunk(list(data.freshness), i, n)
    )
    return f'<div class="bs-table bs-fresh">{head}{cells}</div>'


SLIDE_HTML = {
    "company": company_slide,
    "departments": departments_slide,
    "risks": risks_slide,
    "matrix": matrix_slide,
    "freshness": freshness_slide,
}


SLIDE_TITLE = {
    "company": "bs_company",
    "departments": N_("bs_departments"),
    "risks": N_("bs_risks"),
    "matrix": N_("bs_matrix"),
    "freshness": N_("bs_freshness"),
}


def frame(title: str, meta: str, now: datetime, lang: str, body: str, foot: str = "") -> str:
    hhmm, day = clock_text(now, lang)
    return (
        f'<div class="bs-root" data-testid="bs-root"><div class="bs-top">'
        f'<div class="bs-title">{e(title)}</div><div class="bs-meta">{meta}</div>'
        f'<div class="bs-clock"><span class="bs-time">{hhmm}</span>'
        f'<span class="bs-date">{e(day)}</span></div></div>'
        f'<div class="bs-slide">{body}</div><div class="bs-foot">{foot}</div></div>'
    )


def render(snap: Snapshot, params: Params, now: datetime, epoch: float) -> str:
    """The whole screen as HTML: the slide the clock picks (`epoch`: seconds), with the clock,
    'data as of' and, when the last refresh failed, since when the data is stale."""
    lang = params.lang
    t = lambda k, **v: i18n.t(k, lang, **v)  # noqa: E731
    stale = ""
    if snap.stale_since is not None:
        stale = (
            f'<span class="bs-stale">▲ {e(t("bs_stale_since", time=snap.stale_since.strftime("%H:%M")))}'
            "</span>"
        )
    data = snap.data
    if data is None:
        message = t("bs_waiting") if snap.stale_since else t("bs_no_data")
        body = f'<div class="bs-message"><h1>{e(message)}</h1></div>'
        return frame(t("bs_title"), stale, now, lang, body)
    shown = pages(data, params.slides)
    slide, i, n = shown[int(epoch // params.rotate) % len(shown)]
    title = t(SLIDE_TITLE[slide]) + (t("bs_page", i=i + 1, n=n) if n > 1 else "")
    meta = e(t("data_as_of", month=data.as_of))
    if data.newer:
        meta += f' · <span class="bs-newer">◐ {e(data.newer)}</span>'
    if snap.fetched_at is not None:
        meta += " · " + e(t("bs_updated", time=snap.fetched_at.strftime("%H:%M")))
    names = list(dict.fromkeys(s for s, _, _ in shown))
    foot = "".join(
        f'<span class="{"on" if s == slide else ""}">{"●" if s == slide else "○"} '
        f"{e(t(SLIDE_TITLE[s]))}</span>"
        for s in names
    )
    body = (
        f'<div class="bs-slide-body" data-slide="{slide}-{i}">{SLIDE_HTML[slide](data, i, n)}</div>'
    )
    return frame(title, meta + stale, now, lang, body, foot)


# What each refusal says on the wall: (heading, explanation) keys.
NOTICES = {
    "missing": (N_("bs_not_set_up"), N_("bs_no_token")),
    "malformed": ("bs_not_set_up", N_("bs_unknown_token")),
    "unknown": ("bs_not_set_up", "bs_unknown_token"),
    "revoked": (N_("bs_revoked"), N_("bs_revoked_hint")),
    "throttled": (N_("bs_throttled"), N_("bs_throttled_hint")),
    "busy": ("bs_waiting", N_("bs_busy_hint")),
}


def notice(lang: str, reason: str) -> str:
    """A plain message instead of the slides, no data: in the screen's language and, below it,
    in the other — nobody at the wall can switch. Says how to set a screen up where that helps."""
    head, body = NOTICES[reason]
    other = "en" if lang == "zh" else "zh"
    parts = [f"<h1>{e(i18n.t(head, lang))}</h1>", f"<p>{e(i18n.t(body, lang))}</p>"]
    if head == "bs_not_set_up":
        parts.append(f"<p>{e(i18n.t('bs_setup_hint', lang))}</p>")
    parts.append(f'<p class="bs-other">{e(i18n.t(head, other))} · {e(i18n.t(body, other))}</p>')
    body_html = f'<div class="bs-message" data-notice="{reason}">{"".join(parts)}</div>'
    return frame(i18n.t("bs_title", lang), "", datetime.now(), lang, body_html)
