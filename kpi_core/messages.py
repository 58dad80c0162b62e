"""Coded messages: what the core tells a user, kept as a catalog key and its values until it is
shown, then rendered in the reader's language from the same catalogs as the pages' texts.

    raise BackupError(Message("bk_not_a_backup", file=path.name))

A value may itself be a `Message` (a nested message, or a translatable word such as
`Message("w_baseline")` → "baseline" / "基准值"), or `Items` (a list of values or messages,
joined the local way); anything else is put in as it is (file names, codes, numbers). `str(message)` is the English
rendering, so logs, the command line and `--json` output read as before.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from kpi_core.texts import t

# How the items of a list are joined: problems with "; ", names with ", ".
SEPARATORS = {"zh": ("；", "、"), "en": ("; ", ", ")}


class Message:
    """A catalog key and the values its placeholders take."""

    __slots__ = ("key", "values")

    def __init__(self, key: str, /, **values: object) -> None:  # a placeholder may be `key`
        self.key = key
        self.values = values

    def render(self, lang: str) -> str:
        return t(self.key, lang, **{k: render(v, lang) for k, v in self.values.items()})

    def __str__(self) -> str:
        return self.render("en")

    def __repr__(self) -> str:
        values = "".join(f", {k}={v!r}" for k, v in self.values.items())
        return f"Message({self.key!r}{values})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Message) and (self.key, self.values) == (other.key, other.values)

    __hash__ = None  # values may be lists


class Items:
    """Values shown as one list: "a; b" (Chinese "a；b"), or with `commas` "a, b" (Chinese "a、b")."""

    __slots__ = ("commas", "items")

    def __init__(self, items: Iterable[object], commas: bool = False) -> None:
        self.items = tuple(items)
        self.commas = commas

    def render(self, lang: str) -> str:
        sep = SEPARATORS["zh" if lang == "zh" else "en"][self.commas]
        return sep.join(str(render(v, lang)) for v in self.items)

    def __repr__(self) -> str:
        return f"Items({list(self.items)!r}{', commas=True' if self.commas else ''})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Items) and (self.items, self.commas) == (other.items, other.commas)

    __hash__ = None


def render(value: object, lang: str) -> object:
    """A message's value in `lang`: messages and lists rendered; anything else unchanged (a
    number keeps its type so that a placeholder's format spec, `{size:,.0f}`, applies)."""
    if isinstance(value, Message | Items):
        return value.render(lang)
    return value


# --- a message kept in a table (a push's failure in push_log): its key, and its values as JSON --


def _stored(value: object) -> object:
    if isinstance(value, Message):
        return {"message": value.key, "values": {k: _stored(v) for k, v in value.values.items()}}
    if isinstance(value, Items):
        return {"items": [_stored(v) for v in value.items], "commas": value.commas}
    return value if value is None or isinstance(value, bool | int | float) else str(value)


def _restored(value: object) -> object:
    if isinstance(value, dict) and "message" in value:
        return Message(value["message"], **{k: _restored(v) for k, v in value["values"].items()})
    if isinstance(value, dict) and "items" in value:
        return Items([_restored(v) for v in value["items"]], bool(value.get("commas")))
    return value


def dump_values(message: Message) -> str:
    """`message`'s values as JSON (nested messages and lists kept; anything else as text, a
    number as a number), for a row that keeps the key beside them."""
    return json.dumps(
        {k: _stored(v) for k, v in message.values.items()}, ensure_ascii=False, sort_keys=True
    )


def load(key: str, values: str | None) -> Message:
    """The message a row keeps as `key` and `dump_values`' JSON."""
    return Message(key, **{k: _restored(v) for k, v in json.loads(values or "{}").items()})
