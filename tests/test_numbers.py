"""Numbers as people write them, and as each language shows them."""

import pytest

from kpi_core.numbers import NumberError, format_number, parse_number


@pytest.mark.parametrize(
    ("cell", "value", "percent"),
    [
        ("12.5万", 125_000, False),
        ("1.2亿", 120_000_000, False),
        ("85%", 0.85, True),
        ("1,234.5", 1234.5, False),
        ("（123）", -123, False),
        ("(123)", -123, False),
        ("１２３", 123, False),
        ("¥1,000", 1000, False),
        (96, 96, False),
    ],
)
def test_parse(cell, value, percent):
    parsed = parse_number(cell)
    assert parsed.value == pytest.approx(value) and parsed.percent is percent


def test_blank_and_bad():
    assert parse_number("") is None and parse_number(None) is None
    with pytest.raises(NumberError):
        parse_number("12.5w")


@pytest.mark.parametrize(
    ("value", "zh", "en"),
    [
        (60_000_000, "6,000万", "60.00M"),
        (78_117, "7.81万", "78.12K"),
        (915_100, "91.51万", "915.1K"),
        (999_999, "100.0万", "1.00M"),
        (125_000_000, "1.25亿", "125.0M"),
        (9_999, "9,999.0", "9,999.0"),
        (-45_000, "-4.50万", "-45.00K"),
    ],
)
def test_format_compact(value, zh, en):
    assert format_number(value, "zh") == zh
    assert format_number(value, "en") == en


def test_changes_read_the_local_way():
    from kpi_core import i18n
    from kpi_core.library import Kpi

    pct = Kpi(1, "R", "率", "Rate", "%", "up", "avg")
    count = Kpi(2, "S", "安全事故", "Incidents", "次", "down", "sum")
    money = Kpi(3, "REV", "收入", "Revenue", "元", "up", "sum")
    assert i18n.format_delta(0.96, 0.95, pct, "en") == "+1.0pp"
    assert i18n.format_delta(1, 0, count, "zh") == "+1次"  # no % change from zero
    assert i18n.format_delta(110, 100, money, "en") == "+10.0%"
    assert i18n.is_flat("+0.0%") and i18n.is_flat("-0.0pp")
    assert not i18n.is_flat("+1.0%")
