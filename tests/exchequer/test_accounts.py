"""Account-code generation: letters of the company or surname plus a counter."""

import pytest

from exsync.exchequer import (
    AccountCodeExhaustedError,
    AccountCodePattern,
    MappingError,
    generate_account_code,
)


@pytest.mark.parametrize("company, contact, taken, pattern, expected", [
    ("Smith & Sons Ltd", "", [], AccountCodePattern(), "SMIT01"),
    ("Smith & Sons Ltd", "", ["SMIT01", "SMIT02", "SMITH1", "SMIT7A"], AccountCodePattern(), "SMIT03"),
    ("smith", "", ["SMIT09", "smit10"], AccountCodePattern(), "SMIT11"),      # one past the highest
    ("", "Jo Ng", [], AccountCodePattern(), "NGXX01"),                        # padded with X
    ("", "", [], AccountCodePattern(), "XXXX01"),
    ("Acme Ltd", "Jane Wright", [], AccountCodePattern(source="surname"), "WRIG01"),
    ("", "Jane Wright", [], AccountCodePattern(pattern="LLLNNN"), "WRI001"),
    ("3M UK", "", [], AccountCodePattern(pattern="LLNN"), "3M01"),
])
def test_codes(company, contact, taken, pattern, expected):
    assert generate_account_code(company=company, contact=contact, taken=taken, pattern=pattern) == expected


def test_exhausted_and_impossible_patterns():
    with pytest.raises(AccountCodeExhaustedError):
        generate_account_code(company="Smith", contact="", taken=["SMIT99"])
    for pattern in ("NNLL", "LLLLNNN", "LLLL"):
        with pytest.raises(MappingError):
            AccountCodePattern(pattern=pattern)
    with pytest.raises(MappingError):
        AccountCodePattern(source="email")
