"""Account codes: the letters of a name plus a counter, e.g. SMIT01, upper case, at most 6 characters.

`AccountCodePattern` is the configurable part (how many letters, how many digits, whether the
company or the contact's surname comes first). `generate_account_code` is pure; uniqueness under
concurrent writers comes from CUSTSUPP's unique key and a retry in the write backend.
"""

import re
from collections.abc import Iterable

from exsync.exchequer.errors import AccountCodeExhaustedError, MappingError
from exsync.schemas.config import DEFAULT_ACCOUNT_CODE_PATTERN, DEFAULT_ACCOUNT_CODE_SOURCE

__all__ = [
    "DEFAULT_ACCOUNT_CODE_PATTERN",
    "DEFAULT_ACCOUNT_CODE_SOURCE",
    "MAX_ACCOUNT_CODE_LENGTH",
    "AccountCodePattern",
    "generate_account_code",
]

MAX_ACCOUNT_CODE_LENGTH = 6
PADDING_LETTER = "X"
_PATTERN = re.compile(r"^(L+)(N+)$")
_NOT_ALPHANUMERIC = re.compile(r"[^A-Z0-9]")


class AccountCodePattern:
    """`pattern` is letters (L) then digits (N), e.g. LLLLNN; `source` is `company` or `surname`:
    which of the two names the letters come from first (the other when it is empty)."""

    def __init__(self, *, pattern: str = DEFAULT_ACCOUNT_CODE_PATTERN,
                 source: str = DEFAULT_ACCOUNT_CODE_SOURCE) -> None:
        match = _PATTERN.match(pattern)
        if not match or len(pattern) > MAX_ACCOUNT_CODE_LENGTH:
            raise MappingError(f"account code pattern {pattern!r} must be letters (L) then digits (N), "
                               f"at most {MAX_ACCOUNT_CODE_LENGTH} characters, e.g. LLLLNN")
        if source not in ("company", "surname"):
            raise MappingError(f"account code source {source!r} must be company or surname")
        self.pattern = pattern
        self.source = source
        self.letters = len(match.group(1))
        self.digits = len(match.group(2))

    def stem(self, *, company: str, contact: str) -> str:
        """The letters: from the company or the contact's surname, padded with X."""
        surname = contact.split()[-1] if contact.split() else ""
        first, second = (company, surname) if self.source == "company" else (surname, company)
        cleaned = _NOT_ALPHANUMERIC.sub("", (first or second or "").upper())
        return (cleaned + PADDING_LETTER * self.letters)[: self.letters]

    def counter_of(self, code: str, stem: str) -> int | None:
        """The counter of a code made from `stem` by this pattern, or None for another code."""
        rest = code.upper()[len(stem):]
        if code.upper().startswith(stem) and len(rest) == self.digits and rest.isdigit():
            return int(rest)
        return None

    def code(self, stem: str, counter: int) -> str:
        if counter >= 10 ** self.digits:
            raise AccountCodeExhaustedError(f"every code {stem}{'0' * self.digits}..{stem}{'9' * self.digits} is taken")
        return f"{stem}{counter:0{self.digits}d}"


def generate_account_code(*, company: str, contact: str, taken: Iterable[str],
                          pattern: AccountCodePattern | None = None) -> str:
    """The next code for a name: one past the highest counter already `taken` for its letters."""
    pattern = pattern or AccountCodePattern()
    stem = pattern.stem(company=company, contact=contact)
    counters = [c for c in (pattern.counter_of(code, stem) for code in taken) if c is not None]
    return pattern.code(stem, max(counters, default=0) + 1)
