"""The gettext catalogs against the code: every key the code uses has a text in Chinese and in
English, every text in a catalog is used, and both languages fill the same placeholders.

Extraction runs the way a developer runs it (`pybabel extract -F babel.cfg`, README "Messages
and translations"), so a broken babel.cfg or extractor fails here too. The checks themselves
are shown to fail on small catalogs and sources made for the purpose."""

import re
import shutil
import string
import subprocess
import sys
from pathlib import Path

import pytest
from babel.messages.pofile import read_po

from kpi_core import i18n

ROOT = Path(__file__).resolve().parent.parent


def extracted(root: Path, out: Path) -> set[str]:
    """Keys `pybabel extract` finds under `root` with root's babel.cfg."""
    pot = out / "kpi.pot"
    run = subprocess.run(
        [sys.executable, "-m", "babel.messages.frontend", "extract", "-F", "babel.cfg",
         "-o", str(pot), "."],
        cwd=root, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    with pot.open("rb") as f:
        return {m.id for m in read_po(f) if m.id}


def placeholders(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}


def as_written(root: Path = i18n.LOCALE_DIR) -> set[str]:
    """Keys flagged `no-python-brace-format`: shown as written, never formatted, so their braces
    are text (an example URL's `${secrets.…}`), not placeholders."""
    out = set()
    for lang in i18n.LANGS:
        with i18n.catalog_path(lang, root).open("rb") as f:
            out |= {m.id for m in read_po(f) if m.id and "no-python-brace-format" in m.flags}
    return out


def problems(
    keys: set[str], catalogs: dict[str, dict[str, str]], verbatim: frozenset[str] = frozenset()
) -> list[str]:
    """What is wrong between the keys the code uses and the catalogs, one line per fault."""
    out = []
    for lang, texts in catalogs.items():
        out += [f"{lang}: '{k}' is used but has no text" for k in sorted(keys - set(texts))]
        out += [
            f"{lang}: '{k}' is in the catalog but never used" for k in sorted(set(texts) - keys)
        ]
        out += [f"{lang}: '{k}' has an empty text" for k, v in texts.items() if not v.strip()]
    zh, en = catalogs["zh"], catalogs["en"]
    for k in sorted((set(zh) & set(en)) - verbatim):
        if placeholders(zh[k]) != placeholders(en[k]):
            out.append(
                f"'{k}': zh fills {sorted(placeholders(zh[k]))}, en {sorted(placeholders(en[k]))}"
            )
    return out


@pytest.fixture(scope="module")
def code_keys(tmp_path_factory) -> set[str]:
    return extracted(ROOT, tmp_path_factory.mktemp("pot"))


def test_every_used_key_has_both_texts_and_every_text_is_used(code_keys):
    assert len(code_keys) > 1000  # extraction found the code, not an empty tree
    assert problems(code_keys, i18n.CATALOGS, frozenset(as_written())) == []


def test_no_key_is_written_twice_in_a_catalog():
    """Two branches adding the same key would leave two entries; gettext keeps one silently."""
    for lang in i18n.LANGS:
        ids = re.findall(r'^msgid "(.+)"$', i18n.catalog_path(lang).read_text("utf-8"), re.M)
        assert sorted({k for k in ids if ids.count(k) > 1}) == [], lang


def test_t_reads_the_catalogs():
    assert i18n.t("app_title", "zh") == "KPI 监控"
    assert i18n.t("app_title", "en") == "KPI Monitor"
    assert i18n.t("tree_count", "zh", shown=3, total=9) == "显示 3 / 9 个节点"


def write_catalog(path: Path, lang: str, texts: dict[str, str]) -> None:
    body = "".join(f'msgid "{k}"\nmsgstr "{v}"\n\n' for k, v in texts.items())
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f'msgid ""\nmsgstr "Language: {lang}\\n"\n\n{body}', encoding="utf-8")


@pytest.fixture
def small_tree(tmp_path) -> Path:
    """A tree with the project's babel.cfg and one module using keys in the ways code does."""
    shutil.copy(ROOT / "babel.cfg", tmp_path / "babel.cfg")
    (tmp_path / "kpi_core").mkdir()
    (tmp_path / "kpi_core" / "page.py").write_text(
        "def show(t, N_, Message, ctx, lang, ok):\n"
        "    t('greeting', lang, name='Li')\n"
        "    ctx.t('bye' if ok else 'stay')\n"
        "    kinds = (N_('kind_a'), N_('kind_b'))\n"
        "    raise ValueError(Message('bad_file', file='x.xlsx'))\n"
        "    t(f'kind_{ok}', lang)  # built: only the N_ list above makes these known\n",
        encoding="utf-8",
    )
    return tmp_path


def catalogs_for(root: Path, texts: dict[str, tuple[str, str]]) -> dict[str, dict[str, str]]:
    for i, lang in enumerate(i18n.LANGS):
        write_catalog(
            i18n.catalog_path(lang, root / "locale"), lang, {k: v[i] for k, v in texts.items()}
        )
    return {
        lang: i18n.load_catalog(i18n.catalog_path(lang, root / "locale")) for lang in i18n.LANGS
    }


GOOD = {
    "greeting": ("你好，{name}", "Hello, {name}"),
    "bye": ("再见", "Bye"),
    "stay": ("留下", "Stay"),
    "kind_a": ("甲", "A"),
    "kind_b": ("乙", "B"),
    "bad_file": ("文件 {file} 有误", "File {file} is wrong"),
}


def test_extraction_finds_calls_branches_markers_and_messages(small_tree, tmp_path):
    keys = extracted(small_tree, tmp_path)
    assert keys == set(GOOD)
    assert problems(keys, catalogs_for(small_tree, GOOD)) == []


def test_a_key_missing_in_one_language_fails(small_tree, tmp_path):
    keys = extracted(small_tree, tmp_path)
    cats = catalogs_for(small_tree, GOOD)
    del cats["zh"]["bye"]
    assert problems(keys, cats) == ["zh: 'bye' is used but has no text"]


def test_a_new_call_without_catalog_entries_fails(small_tree, tmp_path):
    page = small_tree / "kpi_core" / "page.py"
    page.write_text(page.read_text("utf-8") + "    t('brand_new', lang)\n", encoding="utf-8")
    keys = extracted(small_tree, tmp_path)
    assert problems(keys, catalogs_for(small_tree, GOOD)) == [
        "zh: 'brand_new' is used but has no text",
        "en: 'brand_new' is used but has no text",
    ]


def test_an_unused_entry_fails(small_tree, tmp_path):
    keys = extracted(small_tree, tmp_path)
    cats = catalogs_for(small_tree, {**GOOD, "old": ("旧", "Old")})
    assert problems(keys, cats) == [
        "zh: 'old' is in the catalog but never used",
        "en: 'old' is in the catalog but never used",
    ]


def test_placeholders_that_differ_fail(small_tree, tmp_path):
    keys = extracted(small_tree, tmp_path)
    cats = catalogs_for(small_tree, {**GOOD, "greeting": ("你好，{user}", "Hello, {name}")})
    assert problems(keys, cats) == ["'greeting': zh fills ['user'], en ['name']"]


def test_a_built_key_without_its_n_mark_fails(small_tree, tmp_path):
    """Keys built at run time (`t(f"kind_{…}")`) are known only by the N_ marks written where
    they are built (there is no separate list of them): drop the marks and both languages say
    the keys are never used."""
    page = small_tree / "kpi_core" / "page.py"
    page.write_text(
        page.read_text("utf-8").replace("(N_('kind_a'), N_('kind_b'))", "('kind_a', 'kind_b')"),
        encoding="utf-8",
    )
    keys = extracted(small_tree, tmp_path)
    assert problems(keys, catalogs_for(small_tree, GOOD)) == [
        "zh: 'kind_a' is in the catalog but never used",
        "zh: 'kind_b' is in the catalog but never used",
        "en: 'kind_a' is in the catalog but never used",
        "en: 'kind_b' is in the catalog but never used",
    ]


def test_no_module_only_lists_keys():
    """Each N_ mark sits where its key is built; no module exists only to list keys."""
    assert not (ROOT / "kpi_core" / "runtime_keys.py").exists()
