"""WooCommerce webhook signatures: base64 HMAC-SHA256 of the raw body, keyed with the secret.

Checked on the exact bytes received, before any parsing: re-serialised JSON would not verify.
"""

import base64
import hashlib
import hmac
import html

__all__ = ["compute_signature", "verify_signature"]


def _key(secret):
    # WooCommerce stores secrets HTML-escaped and decodes them before signing: `&amp;` means `&`.
    return html.unescape(secret).encode("utf-8")


def compute_signature(body, secret):
    """The value WooCommerce puts in X-WC-Webhook-Signature for `body` (bytes)."""
    digest = hmac.new(_key(secret), body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def verify_signature(body, header_value, secrets):
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
