"""The webhook registrar: makes the shop's webhooks match exsync's configuration, and keeps them so.

WooCommerce disables a webhook after repeated failed deliveries and never turns it back on, so
this runs at start and periodically (from the reconciler). It only ever touches webhooks it owns,
recognised by their name prefix (`exsync:` by default): anything else on the shop is someone else's.

WooCommerce never shows a webhook's `secret` or `api_version` once set, so the registrar compares
only what the shop returns and keeps its own record of what it last set: a fingerprint (an HMAC
keyed by the secret, never the secret) per webhook. A webhook whose fingerprint is missing or
differs gets the secret once; an unchanged shop sees no write at all.
"""

import dataclasses
import hashlib
import hmac
import html
import logging
import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from exsync.metrics import Metrics
from exsync.schemas.config import DEFAULT_WEBHOOK_API_VERSION as DEFAULT_API_VERSION
from exsync.schemas.config import DEFAULT_WEBHOOK_NAME_PREFIX as DEFAULT_NAME_PREFIX
from exsync.schemas.config import DEFAULT_WEBHOOK_TOPICS

if TYPE_CHECKING:  # for annotations only: the client's package imports this module
    from exsync.woo.client import WooClient

__all__ = [
    "DEFAULT_API_VERSION",
    "DEFAULT_NAME_PREFIX",
    "DEFAULT_WEBHOOK_TOPICS",
    "WEBHOOK_STATUSES",
    "MemorySecretRecord",
    "SecretRecord",
    "WebhookAction",
    "WebhookRegistrar",
]

log = logging.getLogger(__name__)

WEBHOOK_STATUSES = ("active", "paused", "disabled")


@dataclasses.dataclass(frozen=True, kw_only=True)
class WebhookAction:
    """What the registrar did to one webhook: created, repaired, reactivated, deleted or unchanged."""

    action: str
    topic: str
    webhook_id: int
    changes: tuple[str, ...] = ()


def _same_secret(stored: str | None, wanted: str) -> bool:
    # WooCommerce may hand back the secret HTML-escaped; it signs with the decoded form.
    return stored == wanted or html.unescape(stored or "") == wanted


def secret_fingerprint(*, secret: str, api_version: str, webhook_id: int) -> str:
    """What the record keeps of the secret and API version set on one webhook: an HMAC keyed by
    the secret, so the record gives nothing away and cannot be checked against guesses offline
    without the webhook's id, and a different webhook with the same secret has another."""
    message = f"exsync webhook {webhook_id} {api_version}".encode()
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


class SecretRecord:
    """Where the registrar keeps, per webhook id, the fingerprint of what it last set."""

    def get(self, webhook_id: int) -> str | None:
        raise NotImplementedError

    def set(self, webhook_id: int, fingerprint: str) -> None:
        raise NotImplementedError

    def forget(self, webhook_id: int) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Lets go of whatever the record holds open (nothing, unless it says otherwise)."""


class MemorySecretRecord(SecretRecord):
    """A record for one process (tests, the demo): a restart pushes every secret once more."""

    def __init__(self) -> None:
        self._fingerprints: dict[int, str] = {}
        self._lock = threading.Lock()

    def get(self, webhook_id: int) -> str | None:
        with self._lock:
            return self._fingerprints.get(int(webhook_id))

    def set(self, webhook_id: int, fingerprint: str) -> None:
        with self._lock:
            self._fingerprints[int(webhook_id)] = fingerprint

    def forget(self, webhook_id: int) -> None:
        with self._lock:
            self._fingerprints.pop(int(webhook_id), None)


class WebhookRegistrar:
    """Creates missing webhooks, repairs a wrong URL, secret or API version, re-activates disabled ones.

    `record` keeps what was last set of the secret (MemorySecretRecord when not given; the CLI
    passes one in the state database so that a restart does not push every secret again).
    """

    def __init__(self, *, client: "WooClient", delivery_url: str, secret: str,
                 topics: Iterable[str] = DEFAULT_WEBHOOK_TOPICS, name_prefix: str = DEFAULT_NAME_PREFIX,
                 api_version: str = DEFAULT_API_VERSION, metrics: Metrics | None = None,
                 record: SecretRecord | None = None) -> None:
        if not delivery_url:
            raise ValueError("the webhook delivery URL is required")
        if not secret:
            raise ValueError("a webhook secret is required (WooCommerce would otherwise make one up)")
        self.client = client
        self.delivery_url = delivery_url
        self.secret = secret
        self.topics = tuple(dict.fromkeys(topics))
        self.name_prefix = name_prefix
        self.api_version = api_version
        self.metrics = metrics or Metrics()
        self.record: SecretRecord = record if record is not None else MemorySecretRecord()

    def owns(self, webhook: dict[str, Any]) -> bool:
        return str(webhook.get("name") or "").startswith(self.name_prefix)

    def sync(self) -> list[WebhookAction]:
        """One pass over the shop's webhooks; returns what was done, one WebhookAction per owned webhook."""
        owned = sorted((w for w in self.client.iter_webhooks() if self.owns(w)), key=lambda w: w["id"])
        by_topic: dict[str, list[dict[str, Any]]] = {}
        for webhook in owned:
            by_topic.setdefault(webhook["topic"], []).append(webhook)
        actions: list[WebhookAction] = []
        statuses: list[str] = []
        for topic in self.topics:
            candidates = by_topic.pop(topic, [])
            if not candidates:
                created = self.client.create_webhook({
                    "name": f"{self.name_prefix} {topic}", "topic": topic, "delivery_url": self.delivery_url,
                    "secret": self.secret, "status": "active", "api_version": self.api_version})
                self.record.set(created["id"], self._fingerprint(created["id"]))
                log.info("webhook %s created for %s", created["id"], topic)
                actions.append(WebhookAction(action="created", topic=topic, webhook_id=created["id"]))
                statuses.append(created.get("status", "active"))
                continue
            # Keep the one already delivering where we want; the rest would double every delivery.
            keep = next((w for w in candidates if w["delivery_url"] == self.delivery_url and w["status"] == "active"),
                        candidates[0])
            action = self._repair(keep)
            actions.append(action)
            statuses.append("active" if "status" in action.changes else keep["status"])
            for duplicate in candidates:
                if duplicate is not keep:
                    actions.append(self._delete(duplicate, reason="duplicate"))
        for leftovers in by_topic.values():
            for webhook in leftovers:
                actions.append(self._delete(webhook, reason="topic no longer configured"))
        for status in WEBHOOK_STATUSES:
            self.metrics.set("woo_webhooks", statuses.count(status), status=status)
        return actions

    def _fingerprint(self, webhook_id: int) -> str:
        return secret_fingerprint(secret=self.secret, api_version=self.api_version, webhook_id=webhook_id)

    def _secret_changes(self, webhook: dict[str, Any]) -> dict[str, str]:
        """The secret and API version to push: only what the shop shows differs, or (as WooCommerce
        shows neither) what the record says was set differs or was never recorded."""
        fingerprint = self._fingerprint(webhook["id"])
        shown_secret, shown_version = webhook.get("secret"), webhook.get("api_version")
        if shown_secret is not None and shown_version is not None:
            if _same_secret(shown_secret, self.secret) and shown_version == self.api_version:
                if self.record.get(webhook["id"]) != fingerprint:
                    self.record.set(webhook["id"], fingerprint)
                return {}
        elif self.record.get(webhook["id"]) == fingerprint and shown_version in (None, self.api_version) \
                and (shown_secret is None or _same_secret(shown_secret, self.secret)):
            return {}
        return {"secret": self.secret, "api_version": self.api_version}

    def _repair(self, webhook: dict[str, Any]) -> WebhookAction:
        changes: dict[str, str] = {}
        if webhook.get("delivery_url") != self.delivery_url:
            changes["delivery_url"] = self.delivery_url
        changes.update(self._secret_changes(webhook))
        reactivate = webhook["status"] == "disabled"
        if reactivate:
            changes["status"] = "active"
        elif webhook["status"] == "paused":
            # Someone paused it on purpose; the reconciler covers the gap until they resume it.
            log.warning("webhook %s (%s) is paused; leaving it as it is", webhook["id"], webhook["topic"])
        if not changes:
            return WebhookAction(action="unchanged", topic=webhook["topic"], webhook_id=webhook["id"])
        self.client.update_webhook(webhook["id"], changes)
        if "secret" in changes:
            self.record.set(webhook["id"], self._fingerprint(webhook["id"]))
        fields = tuple(sorted(name for name in changes if name != "status"))
        log.info("webhook %s (%s) %s%s", webhook["id"], webhook["topic"],
                 "re-activated" if reactivate else "repaired", f": {', '.join(fields)}" if fields else "")
        return WebhookAction(action="reactivated" if reactivate and not fields else "repaired",
                             topic=webhook["topic"], webhook_id=webhook["id"], changes=tuple(sorted(changes)))

    def _delete(self, webhook: dict[str, Any], *, reason: str) -> WebhookAction:
        self.client.delete_webhook(webhook["id"])
        self.record.forget(webhook["id"])
        log.info("webhook %s (%s) deleted: %s", webhook["id"], webhook["topic"], reason)
        return WebhookAction(action="deleted", topic=webhook["topic"], webhook_id=webhook["id"])
