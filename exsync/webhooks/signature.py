"""WooCommerce webhook signatures: base64 HMAC-SHA256 of the raw body, keyed with the secret.

Checked on the exact bytes received, before any parsing: re-serialised JSON would not verify.
"""

import base64
import hashlib
import hmac
import re
from collections.abc import Iterable

__all__ = ["compute_signature", "verify_signature", "wordpress_specialchars_decode"]


# WooCommerce signs with wp_specialchars_decode(secret, ENT_QUOTES): only these entities (with any
# number of leading zeros in the numeric forms, `x` in either case) are decoded, in one pass; every
# other entity (`&eacute;`, `&#65;`, `&copy`) stays as typed, which html.unescape would not do.
_WORDPRESS_SPECIALCHARS = re.compile(
    r"&(?:(?P<apos>#0*39|#[xX]0*27)|(?P<quot>quot|#0*34|#[xX]0*22)|(?P<lt>lt|#0*60)|(?P<gt>gt|#0*62)"
    r"|(?P<amp>amp|#0*38|#[xX]0*26));")
# Keyed by Match.lastgroup, which mypy types `str | None`; never None here, every alternative being a
# named group (a key type, not a check: this runs on every request's signature).
_DECODED: dict[str | None, str] = {"apos": "'", "quot": '"', "lt": "<", "gt": ">", "amp": "&"}


def wordpress_specialchars_decode(text: str) -> str:
    """WordPress's `wp_specialchars_decode(text, ENT_QUOTES)`: the key WooCommerce signs with."""
    if "&" not in text:
        return text
    return _WORDPRESS_SPECIALCHARS.sub(lambda match: _DECODED[match.lastgroup], text)


def _key(secret: str) -> bytes:
    return wordpress_specialchars_decode(secret).encode("utf-8")


def compute_signature(body: bytes, secret: str) -> str:
    """The value WooCommerce puts in X-WC-Webhook-Signature for `body` (bytes)."""
    digest = hmac.new(_key(secret), body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def verify_signature(body: bytes, header_value: str | None, secrets: Iterable[str]) -> bool:
    """True when the header matches the body under any of the secrets (several while rotating)."""
    if not header_value:
        return False
    received = header_value.strip().encode("ascii", "replace")
    matched = False
    # Every secret is tried, so the time taken does not tell which one (if any) came close.
    for secret in secrets:
        expected = compute_signature(body, secret).encode("ascii")
        matched |= hmac.compare_digest(expected, received)
    return matched
