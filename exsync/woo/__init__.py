"""Everything that knows WooCommerce's REST API: the client, the registrar, the reconciler.

The sandbox shop used by tests, the demo and the benchmarks is `exsync.sandbox`.
"""

from exsync.woo.client import (
    BatchItemResult,
    BatchResult,
    Page,
    WooClient,
    WooResponse,
    normalise_route,
)
from exsync.woo.errors import (
    StateStoreError,
    WooApiError,
    WooAuthError,
    WooBadRequest,
    WooBatchTooLarge,
    WooError,
    WooNotFound,
    WooProtocolError,
    WooRateLimited,
    WooServerError,
    WooTransportError,
)
from exsync.woo.ratelimit import TokenBucket
from exsync.woo.reconciler import Reconciler, ReconcileReport
from exsync.woo.registrar import WebhookAction, WebhookRegistrar
from exsync.woo.state import MemoryStore, StateStore
from exsync.woo.transport import WooTransport

__all__ = [
    "BatchItemResult",
    "BatchResult",
    "MemoryStore",
    "Page",
    "ReconcileReport",
    "Reconciler",
    "StateStore",
    "TokenBucket",
    "WebhookAction",
    "WebhookRegistrar",
    "WooApiError",
    "WooAuthError",
    "WooBadRequest",
    "WooBatchTooLarge",
    "WooClient",
    "StateStoreError",
    "WooError",
    "WooNotFound",
    "WooProtocolError",
    "WooRateLimited",
    "WooResponse",
    "WooServerError",
    "WooTransport",
    "WooTransportError",
    "normalise_route",
]
