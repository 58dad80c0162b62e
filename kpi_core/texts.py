"""The product's texts in Chinese and English, read from gettext catalogs.

kpi_core/locale/<lang>/LC_MESSAGES/kpi.po holds one entry per text, the message key as msgid
("app_title" → "KPI 监控" / "KPI Monitor"), placeholders written `{name}` as str.format fills
them. Both catalogs are read once, at import, into one plain dict per language, so `t()` costs a
dict lookup. The .po files are read as they are — no compiled .mo to keep in step with them;
reading both takes a few hundredths of a second. This module imports nothing of the product, so
that the core's errors (kpi_core.messages) can render with it. README: "Messages and
translations".
"""

from __future__ import annotations

from pathlib import Path

from babel.messages.pofile import read_po

LANGS = ("zh", "en")
LOCALE_DIR = Path(__file__).parent / "locale"
DOMAIN = "kpi"


def catalog_path(lang: str, root: Path = LOCALE_DIR) -> Path:
    return root / lang / "LC_MESSAGES" / f"{DOMAIN}.po"


def load_catalog(path: Path) -> dict[str, str]:
    """key → text of one .po file; the header entry (empty msgid) left out."""
    with path.open("rb") as f:
        return {m.id: m.string for m in read_po(f) if m.id and isinstance(m.id, str)}


CATALOGS: dict[str, dict[str, str]] = {lang: load_catalog(catalog_path(lang)) for lang in LANGS}
_ZH, _EN = CATALOGS["zh"], CATALOGS["en"]


def t(key: str, lang: str, /, **values: object) -> str:
    """The text of `key` in `lang` ("zh", else English), its {placeholders} filled in (named
    `key` or `lang` too: the two are positional only)."""
    text = (_ZH if lang == "zh" else _EN)[key]
    return text.format(**values) if values else text


def N_(key: str) -> str:
    """Marks a key that is picked at run time, so that extraction finds it; returns it as is."""
    return key


def known(key: str) -> bool:
    """Whether a message key exists (a page may show a built key's text or the raw value)."""
    return key in _EN
