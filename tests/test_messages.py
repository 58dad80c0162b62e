"""Coded messages (kpi_core.messages): a key and values, rendered in the reader's language from
the catalogs; the core's errors carry them and stay English in `str()`."""

import pytest

from kpi_core import backup
from kpi_core.errors import KpiError, NotFoundError
from kpi_core.messages import Items, Message


def test_a_message_renders_in_each_language_and_is_english_as_text():
    said = Message("bk_twice", file="may.zip", name="manifest.json")
    assert said.render("en") == "may.zip holds manifest.json twice; it is not a sound backup."
    assert said.render("zh") == "“may.zip”中 manifest.json 出现了两次；这不是完好的备份。"
    assert str(said) == said.render("en")


def test_nested_messages_words_and_lists_render_in_the_same_language():
    table = Message("bk_obj_table", name="kpi")  # a word ("table" / "表") with a value
    parts = Items(
        [Message("bk_no_column", column="caliber"), Message("bk_extra_column", column="x")],
        commas=True,
    )
    said = Message("bk_wrong_schema", label=Message("bk_file", file="old.zip"), version=12,
                   problems=Items([Message("bk_table_differs", obj=table, parts=parts),
                                   Message("bk_and_more", n=3)]))  # fmt: skip
    assert said.render("en") == (
        "old.zip is not a KPI Monitor warehouse of schema version 12: "
        "table kpi differs (no column caliber, extra column x); and 3 more."
    )
    assert said.render("zh") == (
        "备份“old.zip”不是结构版本 12 的 KPI 监控仓库："
        "表 kpi 与仓库不同（缺少列 caliber、多出列 x）；另有 3 处。"
    )


def test_a_value_keeps_its_format_spec():
    said = Message("bk_manifest_too_big", file="big.zip", size=2_000_000)
    assert "2,000,000 bytes" in str(said) and "2,000,000 字节" in said.render("zh")


def test_an_error_with_a_message_is_english_as_text_and_renders_in_the_page_language():
    err = NotFoundError(Message("bk_no_file", path="/srv/b.zip"))
    assert str(err) == "There is no backup file /srv/b.zip." and err.args == (str(err),)
    assert err.text("zh") == "没有备份文件 /srv/b.zip。"
    assert err.coded == Message("bk_no_file", path="/srv/b.zip")


def test_an_error_with_plain_text_is_unchanged():
    err = KpiError("File not found: x.xlsx")
    assert (str(err), err.text("zh"), err.coded, err.args) == (
        "File not found: x.xlsx", "File not found: x.xlsx", None, ("File not found: x.xlsx",),
    )  # fmt: skip
    assert KpiError().args == ()


def test_a_backup_error_in_chinese_and_english(tmp_path):
    bad = tmp_path / "kpi-backup-may.zip"
    bad.write_bytes(b"not a zip at all")
    with pytest.raises(backup.BackupError) as refused:
        backup.read_manifest(bad)
    err = refused.value
    assert str(err).startswith("kpi-backup-may.zip is damaged or not a backup: ")
    assert err.text("en") == str(err)
    assert err.text("zh").startswith("“kpi-backup-may.zip”已损坏，或不是备份：")
