"""Webhook deliveries from the sandbox shop, sent the way WooCommerce sends them.

Events are queued (as Action Scheduler does, one pending delivery per webhook and resource, so
quick successive changes collapse into one) and sent by a background thread after a delay (about a
second by default), never inside the request that caused them. The body is built at
send time, compact JSON in PHP's escaping, signed with base64 HMAC-SHA256 keyed by the
HTML-entity-decoded secret. Status 200-302 is success; anything else is counted, the webhook is
disabled after the count passes the limit, and nothing is ever retried. Pings are form posts of
`webhook_id=<id>` with no signature, and only a 200 counts.
"""

import base64
import collections
import dataclasses
import hashlib
import hmac
import logging
import secrets
import threading
import time
from typing import TYPE_CHECKING, Any

import requests

from exsync.sandbox.phpjson import php_json_dumps

if TYPE_CHECKING:
    from exsync.sandbox.shop import SandboxShop

__all__ = [
    "USER_AGENT",
    "WC_VERSION",
    "WP_VERSION",
    "DEFAULT_DELIVERY_DELAY_SECONDS",
    "DeliveryRecord",
    "WebhookDeliverer",
    "sign_body",
    "wp_specialchars_decode",
]

log = logging.getLogger(__name__)

WC_VERSION = "8.9.1"
# Action Scheduler sends queued deliveries a little after the request that caused them; a real
# site takes from a second to a minute. Changes made before the delivery is sent collapse into it.
DEFAULT_DELIVERY_DELAY_SECONDS = 1.0
WP_VERSION = "6.5.5"
USER_AGENT = f"WooCommerce/{WC_VERSION} Hookshot (WordPress/{WP_VERSION})"

_ENTITIES = (("&lt;", "<"), ("&gt;", ">"), ("&quot;", '"'), ("&#039;", "'"), ("&#39;", "'"), ("&#x27;", "'"),
             ("&amp;", "&"))


def wp_specialchars_decode(text: str) -> str:
    """WordPress's `wp_specialchars_decode(..., ENT_QUOTES)`, applied to the secret before signing."""
    for entity, character in _ENTITIES:
        text = text.replace(entity, character)
    return text


def sign_body(body: bytes, secret: str) -> str:
    """The `X-WC-Webhook-Signature` value for these exact bytes."""
    key = wp_specialchars_decode(secret).encode("utf-8")
    return base64.b64encode(hmac.new(key, body, hashlib.sha256).digest()).decode("ascii")


@dataclasses.dataclass(frozen=True, kw_only=True)
class DeliveryRecord:
    """One attempt the sandbox made (a delivery or a ping) and how the receiver answered."""

    kind: str
    webhook_id: int
    topic: str
    resource_id: object
    delivery_url: str
    headers: dict
    body: bytes
    status_code: int | None
    ok: bool
    error: str | None = None


class WebhookDeliverer:
    """The shop's delivery queue and the one thread that drains it."""

    def __init__(self, *, shop: "SandboxShop", timeout_seconds: float = 60.0,
                 delay_seconds: float = DEFAULT_DELIVERY_DELAY_SECONDS) -> None:
        self.shop = shop
        self.timeout_seconds = timeout_seconds
        self.delay_seconds = delay_seconds
        self.records: list[DeliveryRecord] = []
        self._queue: collections.deque[tuple[float, tuple[int, Any]]] = collections.deque()
        self._pending: set[tuple[int, Any]] = set()
        self._in_flight = 0
        self._condition = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._salt = secrets.token_bytes(16)

    def enqueue(self, *, webhook_id: int, resource_id: Any) -> None:
        """Schedules a delivery unless one for this webhook and resource is already waiting."""
        key = (webhook_id, resource_id)
        with self._condition:
            if key in self._pending:
                return
            self._pending.add(key)
            self._queue.append((time.monotonic() + self.delay_seconds, key))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="sandbox-webhooks", daemon=True)
                self._thread.start()
            self._condition.notify_all()

    def wait_until_idle(self, timeout_seconds: float = 10.0) -> bool:
        """Blocks until every queued delivery has been sent; returns False on timeout."""
        deadline = time.monotonic() + timeout_seconds
        with self._condition:
            while self._queue or self._in_flight:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._condition.wait(remaining)
        return True

    def stop(self) -> None:
        with self._condition:
            self._stopping = True
            self._condition.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self):
        while True:
            with self._condition:
                while not self._queue and not self._stopping:
                    self._condition.wait()
                if self._stopping:
                    return
                due, key = self._queue[0]
                wait_seconds = due - time.monotonic()
                if wait_seconds > 0:
                    self._condition.wait(wait_seconds)
                    continue
                self._queue.popleft()
                # Once running it is no longer pending: a change from now on schedules a new delivery.
                self._pending.discard(key)
                self._in_flight += 1
            try:
                self._deliver(*key)
            except Exception:  # the queue thread must survive anything one delivery does
                log.exception("sandbox delivery of %s failed unexpectedly", key)
            finally:
                with self._condition:
                    self._in_flight -= 1
                    self._condition.notify_all()

    def _delivery_id(self, webhook_id):
        # wp_hash(id . time()): deliveries of one webhook within the same second share it.
        message = f"{webhook_id}{int(time.time())}".encode()
        return hmac.new(self._salt, message, hashlib.md5).hexdigest()

    def _deliver(self, webhook_id, resource_id):
        payload = self.shop.delivery_payload(webhook_id, resource_id)
        if payload is None:
            return
        webhook, body_object = payload
        body = php_json_dumps(body_object)
        resource, _, event = webhook["topic"].partition(".")
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "X-WC-Webhook-Source": self.shop.base_url + "/",
            "X-WC-Webhook-Topic": webhook["topic"],
            "X-WC-Webhook-Resource": resource,
            "X-WC-Webhook-Event": event,
            "X-WC-Webhook-Signature": sign_body(body, webhook["secret"]),
            "X-WC-Webhook-ID": str(webhook["id"]),
            "X-WC-Webhook-Delivery-ID": self._delivery_id(webhook["id"]),
            "Connection": "close",
        }
        status_code, error = self._post(webhook["delivery_url"], body, headers)
        ok = status_code is not None and 200 <= status_code <= 302
        self.records.append(DeliveryRecord(kind="delivery", webhook_id=webhook["id"], topic=webhook["topic"],
                                           resource_id=resource_id, delivery_url=webhook["delivery_url"],
                                           headers=headers, body=body, status_code=status_code, ok=ok, error=error))
        if self.shop.record_delivery_outcome(webhook["id"], ok):
            self.ping(webhook["id"])

    def ping(self, webhook_id: int) -> bool:
        """Sends the ping synchronously; only HTTP 200 counts, and then the webhook stops pinging."""
        with self.shop.lock:
            webhook = self.shop.webhooks.get(webhook_id)
            if webhook is None:
                return False
            webhook = dict(webhook)
        body = f"webhook_id={webhook['id']}".encode()
        headers = {"Content-Type": "application/x-www-form-urlencoded", "User-Agent": USER_AGENT,
                   "Connection": "close"}
        status_code, error = self._post(webhook["delivery_url"], body, headers)
        ok = status_code == 200
        self.records.append(DeliveryRecord(kind="ping", webhook_id=webhook["id"], topic=webhook["topic"],
                                           resource_id=None, delivery_url=webhook["delivery_url"], headers=headers,
                                           body=body, status_code=status_code, ok=ok, error=error))
        if ok:
            with self.shop.lock:
                if webhook_id in self.shop.webhooks:
                    self.shop.webhooks[webhook_id]["pending_delivery"] = False
        return ok

    def _post(self, url, body, headers):
        try:
            response = requests.post(url, data=body, headers=headers, timeout=self.timeout_seconds,
                                     allow_redirects=False)
        except requests.RequestException as error:
            return None, str(error)
        response.close()
        return response.status_code, None
