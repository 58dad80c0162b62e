"""The command line's plain-text output: a unit's scorecard as a card of lines."""

from __future__ import annotations


def _fmt(v: float | None, digits: int = 1) -> str:
    return "—" if v is None else f"{v:,.{digits}f}"


def _text_card(card: dict) -> str:
    lines = [
        f"{card['unit']} {card['period']}: score {_fmt(card['score'])} ({card['status']}), "
        f"coverage {card['coverage'] * 100:.0f}%",
    ]
    if card.get("vetoed_by"):
        lines.append(f"  vetoed by: {', '.join(card['vetoed_by'])}")
    lines.append(f"  {'KPI':<16}{'weight':>7}{'actual':>16}{'target':>16}{'score':>8}  status")
    for k in card["kpis"]:
        lines.append(
            f"  {k['kpi']:<16}{k['weight']:>7g}{_fmt(k['actual'], 2):>16}"
            f"{_fmt(k['target'], 2):>16}{_fmt(k['score']):>8}  {k['status']}"
        )
    for u in card.get("units", []):
        lines.append(
            f"  [{u['unit']:<14}]{u['weight']:>7g}{'':>32}{_fmt(u['score']):>8}  {u['status']}"
        )
    return "\n".join(lines)
