"""Secrets out of anything that can reach a log or an exception message: one helper, no dependencies.

What it knows how to hide:
- ODBC connection strings: the value of PWD/Password (and other secret-named keys), including
  values in braces with ODBC's `}}` escaping (`PWD={pa}}ss;word}` is one value);
- URLs with a password (`amqp://user:pass@host/`), and secret query parameters
  (`oauth_signature`, `oauth_consumer_key`, `consumer_key`, `consumer_secret`, ...);
- `Authorization` headers (Basic, Bearer, OAuth ... whatever follows the scheme);
- any literal secret handed in (webhook secrets, consumer keys), wherever it appears.

`redact(text, secrets=...)` applies all of them; it is meant for free text (an exception message
that quotes a URL or a connection string), so each rule finds its own shape inside a longer text.
"""

import logging
import re
from collections.abc import Iterable

__all__ = ["MASK", "RedactingFilter", "redact", "redact_odbc", "redact_url", "secrets_in", "secrets_of"]

MASK = "***"
# Shorter literal secrets are not replaced: masking every "a" in a log would hide the log, not a secret.
MIN_SECRET_CHARS = 4

_SECRET_KEY = r"(?:pwd|password|passwd|secret|token|api[_-]?key|access[_-]?token|auth[_-]?token)"
# An ODBC attribute: its value is either {braced, with }} for a literal }} or runs up to the next ;.
# In a connection string alone an unbraced value runs to the next `;`; inside free text, to the
# next space too (so the words after a masked value, the reason for an error, stay readable).
# A value masked already (by an earlier pass) is left as it is, with what follows it.
_ODBC_KEY = r"(?i)(?P<key>\b[\w ]*?" + _SECRET_KEY + r")(?P<eq>\s*=\s*)(?!\*\*\*(?:[;\s:,)]|$))"
_BRACED = r"\{(?:[^}]|\}\})*(?:\}|$)"
_ODBC_PAIR = re.compile(_ODBC_KEY + r"(?P<value>" + _BRACED + r"|[^;]*)")
_ODBC_PAIR_IN_TEXT = re.compile(_ODBC_KEY + r"(?P<value>" + _BRACED + r"|[^;\s]*)")
_URL_USERINFO = re.compile(r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.\-]*://)(?P<user>[^:/@\s]*):(?P<password>[^@\s/]*)@")
_QUERY_SECRET = re.compile(
    r"(?i)(?P<key>\b(?:oauth_signature|oauth_consumer_key|oauth_token|oauth_nonce|consumer_key|consumer_secret|"
    r"client_secret|access_token|api_key|password|secret|token)(?:%3D|=))"
    r"(?P<value>\"[^\"]*\"|'[^']*'|[^&\s'\"<>#;,)]*)")
_AUTHORIZATION = re.compile(r"(?i)(?P<key>['\"]?(?:proxy-)?authorization['\"]?\s*[:=]\s*['\"]?)"
                            r"(?P<value>(?:[A-Za-z][\w\-]*\s+)?[^'\r\n}]*)")


def redact_odbc(dsn: str, *, _pattern: re.Pattern[str] = _ODBC_PAIR) -> str:
    """An ODBC connection string with every secret-named value (PWD, Password...) masked."""
    return _pattern.sub(lambda m: f"{m['key']}{m['eq']}{MASK}", dsn)


def redact_url(url: str) -> str:
    """A URL (or text holding URLs) with passwords and secret query parameters masked."""
    text = _URL_USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:{MASK}@", url)
    return _QUERY_SECRET.sub(lambda m: f"{m['key']}{MASK}", text)


def redact(text: object, *, secrets: Iterable[str] = ()) -> str:
    """`text` (made a string) with everything this module knows as secret masked."""
    text = str(text)
    for secret in sorted({s for s in secrets if s and len(s) >= MIN_SECRET_CHARS}, key=len, reverse=True):
        text = text.replace(secret, MASK)
    # Each rule runs only where its shape can be: every access-log line passes through here, and
    # most hold no `=`, no `://...@` and no "authorization" (case folding aside: non-ASCII text
    # always runs the case-insensitive rule).
    if not text.isascii() or "authorization" in text.lower():
        text = _AUTHORIZATION.sub(lambda m: f"{m['key']}{MASK}", text)
    has_equals = "=" in text
    if has_equals or "%3" in text or ("://" in text and "@" in text):
        text = redact_url(text)
    return redact_odbc(text, _pattern=_ODBC_PAIR_IN_TEXT) if has_equals else text


def secrets_in(text: str | None) -> tuple[str, ...]:
    """The passwords written in a URL or an ODBC connection string, as written and as meant."""
    found = [m["password"] for m in _URL_USERINFO.finditer(text or "") if m["password"]]
    for match in _ODBC_PAIR.finditer(text or ""):
        secret = match["value"]
        if secret.startswith("{"):
            found.append(secret)  # as written, braces and escapes included
            secret = secret[1:-1].replace("}}", "}") if secret.endswith("}") else secret[1:]
        if secret:
            found.append(secret)
    return tuple(found)


def secrets_of(settings: object) -> tuple[str, ...]:
    """The literal secrets a Settings holds (webhook secrets, shop keys, passwords in DSNs/URLs)."""
    found = list(getattr(settings, "webhook_secrets", ()) or ())
    for name in ("woo_consumer_key", "woo_consumer_secret", "wp_application_password"):
        value = getattr(settings, name, None)
        if value:
            found.append(value)
    for name in ("amqp_url", "exchequer_dsn", "state_dsn"):
        found.extend(secrets_in(getattr(settings, name, None) or ""))
    return tuple(found)


class RedactingFilter(logging.Filter):
    """A logging filter that masks secrets in a record's message and its exception text.

    A last line of defence: the places that build messages redact already, this catches what a
    library (pika, urllib3) writes on its own.
    """

    def __init__(self, *, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.secrets = tuple(secrets)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message, secrets=self.secrets)
        if cleaned != message:
            record.msg, record.args = cleaned, ()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text, secrets=self.secrets)
        return True
