"""WooCommerce-shaped deliveries for tests: bodies encoded as PHP's json_encode does, signed."""

import json
import pathlib

from exsync.sandbox import php_json_dumps
from exsync.webhooks.signature import compute_signature

__all__ = ["fixture", "woo_json", "delivery_headers"]

FIXTURES = pathlib.Path(__file__).resolve().parent.parent / "fixtures" / "woo"


def fixture(name):
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def woo_json(payload):
    """Compact JSON with `\\/` and `\\uXXXX` escapes and no trailing newline, as WooCommerce sends."""
    return php_json_dumps(payload)


def delivery_headers(body, *, secret, topic, webhook_id=3, source="https://shop.example/"):
    resource, _, event = topic.partition(".")
    return {
        "Content-Type": "application/json",
        "User-Agent": "WooCommerce/8.9.1 Hookshot (WordPress/6.5.5)",
        "X-WC-Webhook-Source": source,
        "X-WC-Webhook-Topic": topic,
        "X-WC-Webhook-Resource": resource,
        "X-WC-Webhook-Event": event,
        "X-WC-Webhook-Signature": compute_signature(body, secret),
        "X-WC-Webhook-ID": str(webhook_id),
        "X-WC-Webhook-Delivery-ID": "8f14e45fceea167a5a36dedd4bea2543",
    }
