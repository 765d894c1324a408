"""JSON as PHP's `wp_json_encode` writes it: compact, `\\/` for slashes, `\\uXXXX` for non-ASCII.

Webhook signatures cover these exact bytes, so the sandbox must produce them the way WooCommerce does.
"""

import json
from typing import Any

__all__ = ["php_json_dumps"]


def php_json_dumps(value: Any) -> bytes:
    """Encodes `value` as UTF-8 bytes in PHP's default json_encode form."""
    # A "/" can only occur inside JSON strings, so replacing it in the output escapes exactly those.
    return json.dumps(value, separators=(",", ":"), ensure_ascii=True).replace("/", "\\/").encode("ascii")
