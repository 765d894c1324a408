"""The WooCommerce package's errors, rooted in exsync's one error tree.

A REST failure keeps WooCommerce's own `code` (e.g. `woocommerce_rest_product_invalid_id`) and the
HTTP `status`, so callers branch on facts the shop reported rather than on message text.
"""

from exsync.errors import ExsyncError

__all__ = [
    "StateStoreError",
    "WooApiError",
    "WooAuthError",
    "WooBadRequest",
    "WooBatchTooLarge",
    "WooError",
    "WooNotFound",
    "WooProtocolError",
    "WooRateLimited",
    "WooServerError",
    "WooTransportError",
    "api_error_from",
]


class WooError(ExsyncError):
    """Anything the shop side of exsync raises on purpose."""

    code = None
    status = None
    retryable = False
    retry_after_seconds = None


class WooTransportError(WooError):
    """The shop could not be reached or did not answer in time."""

    retryable = True

    def __init__(self, message, *, sent=False):
        super().__init__(message)
        # A read timeout means the request may have been applied; only idempotent calls retry then.
        self.sent = sent


class WooProtocolError(WooError):
    """The shop answered with something that is not WooCommerce's JSON (a proxy's page, a captcha)."""

    def __init__(self, message, *, status=None):
        super().__init__(message)
        self.status = status


class WooApiError(WooError):
    """WooCommerce answered with its error body `{"code", "message", "data": {"status"}}`."""

    def __init__(self, *, code, message, status, data=None, retry_after_seconds=None):
        super().__init__(f"{status} {code}: {message}")
        self.code = code
        self.message = message
        self.status = status
        self.data = data
        self.retry_after_seconds = retry_after_seconds


class WooBadRequest(WooApiError):
    """400: invalid parameters, invalid ids on writes, duplicate SKUs and the like."""


class WooAuthError(WooApiError):
    """401/403: wrong key or secret, a bad OAuth signature, or no permission."""


class WooNotFound(WooApiError):
    """404: no such resource or route."""


class WooBatchTooLarge(WooApiError):
    """413: the batch held more items than the shop's limit."""


class WooRateLimited(WooApiError):
    """429: the host or a firewall in front of it asks us to slow down."""

    retryable = True


class WooServerError(WooApiError):
    """5xx: the shop or its host failed; may pass."""

    retryable = True


class StateStoreError(WooError):
    """exsync's own record of the shop (the registrar's secret fingerprints) could not be read or written."""


_BY_STATUS = {400: WooBadRequest, 401: WooAuthError, 403: WooAuthError, 404: WooNotFound, 413: WooBatchTooLarge,
              429: WooRateLimited}


def api_error_from(*, status, body, retry_after_seconds=None):
    """Builds the matching WooApiError from an HTTP status and a decoded WooCommerce error body."""
    code, message, data = "http_error", f"HTTP {status}", None
    if isinstance(body, dict):
        code = str(body.get("code") or code)
        message = str(body.get("message") or message)
        data = body.get("data")
    error_class: type[WooApiError]
    if status >= 500:
        error_class = WooServerError
    else:
        error_class = _BY_STATUS.get(status, WooApiError)
    return error_class(code=code, message=message, status=status, data=data,
                       retry_after_seconds=retry_after_seconds)

