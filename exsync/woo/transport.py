"""The shop's HTTP layer: one wc/v3 call at a time, authenticated, paced, retried and translated.

`WooTransport` holds the rules every request obeys: Basic over HTTPS or OAuth 1.0a over HTTP, at
most `requests_per_second` (for the whole deployment when the budget is shared: see `ratelimit`),
back-off with jitter on 429/5xx/transport errors, a `Retry-After` pausing every request of the
process to that shop (and, through the shared budget, of the deployment), never a retry on other
4xx, and requests' and WooCommerce's errors turned into exsync's (`exsync.woo.errors`). What the
calls mean (pages, batches, orders, products) is `WooClient`'s, in client.py.
"""

import dataclasses
import email.utils
import logging
import random
import re
import time
from collections.abc import Callable
from typing import Any, Self

import requests
import tenacity
import urllib3

from exsync.metrics import Metrics
from exsync.redact import redact
from exsync.woo.auth import DEFAULT_SIGNATURE_METHOD, DEFAULT_SIGNATURE_TYPE, auth_for
from exsync.woo.errors import WooError, WooProtocolError, WooTransportError, api_error_from
from exsync.woo.ratelimit import TokenBucket, pause_for

__all__ = [
    "API_PATH",
    "DEFAULT_BACKOFF_INITIAL_SECONDS",
    "DEFAULT_BACKOFF_MAX_SECONDS",
    "DEFAULT_MAX_ATTEMPTS",
    "DEFAULT_MAX_RETRY_AFTER_SECONDS",
    "DEFAULT_REQUESTS_PER_SECOND",
    "DEFAULT_TIMEOUT_SECONDS",
    "WP_USERS_PATH",
    "WooResponse",
    "WooTransport",
    "normalise_route",
]

log = logging.getLogger(__name__)

API_PATH = "/wp-json/wc/v3/"
WP_USERS_PATH = "/wp-json/wp/v2/users/"
DEFAULT_TIMEOUT_SECONDS = 30.0
DEFAULT_REQUESTS_PER_SECOND = 5.0
DEFAULT_MAX_ATTEMPTS = 5
DEFAULT_BACKOFF_INITIAL_SECONDS = 0.5
DEFAULT_BACKOFF_MAX_SECONDS = 30.0
DEFAULT_MAX_RETRY_AFTER_SECONDS = 120.0
# Answers whose Retry-After speaks for the host as a whole (rate limit, maintenance), not one request.
PAUSING_STATUSES = (429, 503)

_ID_SEGMENT = re.compile(r"^\d+$")


def normalise_route(route: str) -> str:
    """The metric label for a route: numeric segments become `{id}` so no id ever becomes a label."""
    path = route.split("?", 1)[0].strip("/")
    return "/".join("{id}" if _ID_SEGMENT.match(part) else part for part in path.split("/"))


def _retry_after_seconds(value):
    """Reads `Retry-After` as seconds (it may be a number or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _refused(error):
    """True when the connection was never made, so the request cannot have reached the shop."""
    if isinstance(error, requests.exceptions.ConnectTimeout):
        return True
    reason = getattr(error.args[0], "reason", None) if error.args else None
    return isinstance(reason, urllib3.exceptions.NewConnectionError)


@dataclasses.dataclass(frozen=True)
class WooResponse:
    """One successful answer: status, headers (case-insensitive) and the decoded JSON body."""

    status: int
    headers: requests.structures.CaseInsensitiveDict
    body: Any


class WooTransport:
    """One shop's HTTP layer; thread-safe, one token bucket shared by every thread."""

    def __init__(
        self,
        *,
        url: str,
        consumer_key: str,
        consumer_secret: str,
        timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
        requests_per_second: float = DEFAULT_REQUESTS_PER_SECOND,
        burst: int | None = None,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        backoff_initial_seconds: float = DEFAULT_BACKOFF_INITIAL_SECONDS,
        backoff_max_seconds: float = DEFAULT_BACKOFF_MAX_SECONDS,
        max_retry_after_seconds: float = DEFAULT_MAX_RETRY_AFTER_SECONDS,
        verify: bool | str = True,
        signature_method: str = DEFAULT_SIGNATURE_METHOD,
        signature_type: str = DEFAULT_SIGNATURE_TYPE,
        metrics: Metrics | None = None,
        session: requests.Session | None = None,
        bucket: TokenBucket | None = None,
    ) -> None:
        if not url:
            raise ValueError("the shop URL is required")
        self.url = url.rstrip("/")
        self.api_url = self.url + API_PATH
        self.timeout_seconds = timeout_seconds
        self.max_attempts = max_attempts
        self.backoff_initial_seconds = backoff_initial_seconds
        self.backoff_max_seconds = backoff_max_seconds
        self.max_retry_after_seconds = max_retry_after_seconds
        self.verify = verify
        self.metrics = metrics or Metrics()
        # What a transport error's text must never show: requests quotes the signed URL in it.
        self._secrets = tuple(secret for secret in (consumer_key, consumer_secret) if secret)
        self._auth = auth_for(url=self.url, consumer_key=consumer_key, consumer_secret=consumer_secret,
                              signature_method=signature_method, signature_type=signature_type)
        # `bucket`: the deployment's shared budget (from_settings), else this client's own.
        self._bucket = bucket or TokenBucket(rate_per_second=requests_per_second, burst=burst)
        self._pause = pause_for(self.url)
        self._session = session or requests.Session()
        self._session.headers.setdefault("Accept", "application/json")
        # Called with each error about to be retried (on the thread that sent it): how a caller keeping
        # several requests in flight hears of 429/503/timeouts the retries hide from its results.
        self.retry_listeners: list[Callable[[WooError], None]] = []

    def close(self) -> None:
        self._session.close()
        self._bucket.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the HTTP layer -------------------------------------------------------------------------

    def request(self, method: str, route: str, *, params: dict[str, Any] | None = None, json: Any = None,
                idempotent: bool | None = None) -> WooResponse:
        """Sends one wc/v3 call (retrying what may pass) and returns the WooResponse.

        `idempotent` says whether the call may be repeated after a read timeout, when the shop may
        already have applied it; it defaults to true for everything but POST.
        """
        return self._send(method, self.api_url + route.lstrip("/"), normalise_route(route), params=params,
                          json=json, auth=self._auth,
                          idempotent=method.upper() != "POST" if idempotent is None else idempotent)

    def _send(self, method, url, endpoint, *, params, json, auth, idempotent):
        def should_retry(error):
            if not isinstance(error, WooError) or not error.retryable:
                return False
            if isinstance(error, WooTransportError) and error.sent and not idempotent:
                return False
            # A Retry-After longer than we are willing to block is the caller's to schedule.
            return error.retry_after_seconds is None or error.retry_after_seconds <= self.max_retry_after_seconds

        def before_sleep(retry_state):
            error = retry_state.outcome.exception()
            reason = "transport" if isinstance(error, WooTransportError) else str(error.status)
            self.metrics.inc("woo_request_retries", endpoint=endpoint, reason=reason)
            for listener in self.retry_listeners:
                listener(error)
            log.warning("shop %s %s failed (%s); attempt %d of %d", method, endpoint, error,
                        retry_state.attempt_number, self.max_attempts)

        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(self.max_attempts),
            retry=tenacity.retry_if_exception(should_retry),
            wait=self._wait_seconds,
            before_sleep=before_sleep,
            reraise=True,
        )
        return retrying(self._attempt, method, url, endpoint, params, json, auth)

    def _wait_seconds(self, retry_state):
        error = retry_state.outcome.exception()
        ceiling = min(self.backoff_max_seconds,
                      self.backoff_initial_seconds * 2 ** (retry_state.attempt_number - 1))
        if error is not None and error.retry_after_seconds is not None:
            # At least what the host asked for, plus a little jitter so parallel clients spread out.
            return error.retry_after_seconds + random.uniform(0, min(1.0, 0.1 * error.retry_after_seconds))
        return random.uniform(0, ceiling)

    def _pause_all(self, error):
        """A 429/503 with Retry-After holds every request of the process (and the deployment) to the shop."""
        if error.status in PAUSING_STATUSES and error.retry_after_seconds:
            seconds = min(error.retry_after_seconds, self.max_retry_after_seconds)
            self._pause.extend(seconds)
            self._bucket.pause(seconds)

    def _attempt(self, method, url, endpoint, params, json, auth):
        self._pause.wait()
        self._bucket.acquire()
        # A pause that began while this request waited for its token holds it too.
        self._pause.wait()
        status_label = "error"
        try:
            with self.metrics.timed("woo_request_duration_seconds", method=method, endpoint=endpoint):
                response = self._session_request(method, url, params, json, auth)
                status_label = str(response.status_code)
                try:
                    return self._read(response)
                except WooError as error:
                    self._pause_all(error)
                    raise
        finally:
            self.metrics.inc("woo_requests", method=method, endpoint=endpoint, status=status_label)

    def _session_request(self, method, url, params, json, auth):
        """One HTTP exchange; requests' errors become WooTransportError (`sent`: the shop may have it)."""
        try:
            return self._session.request(method, url, params=params, json=json, auth=auth,
                                         timeout=self.timeout_seconds, verify=self.verify, allow_redirects=False)
        except requests.exceptions.SSLError as error:
            failure = WooTransportError(f"TLS with {self.url} failed: {self._redacted(error)}", sent=False)
            failure.retryable = False
            raise failure from error
        except requests.exceptions.ReadTimeout as error:
            raise WooTransportError(f"{self.url} did not answer within {self.timeout_seconds} s",
                                    sent=True) from error
        except requests.exceptions.ConnectionError as error:
            raise WooTransportError(f"cannot reach {self.url}: {self._redacted(error)}",
                                    sent=not _refused(error)) from error
        except requests.exceptions.RequestException as error:
            raise WooTransportError(f"request to {self.url} failed: {self._redacted(error)}",
                                    sent=True) from error

    def _redacted(self, text):
        return redact(text, secrets=self._secrets)

    def _read(self, response):
        status = response.status_code
        try:
            body = response.json() if response.content else None
            decoded = True
        except ValueError:
            body, decoded = None, False
        if 200 <= status < 300:
            if not decoded:
                raise WooProtocolError(f"the shop answered {status} with a body that is not JSON "
                                       f"({response.headers.get('Content-Type')})", status=status)
            return WooResponse(status=status, headers=response.headers, body=body)
        if 300 <= status < 400:
            location = self._redacted(response.headers.get("Location"))
            raise WooProtocolError(f"the shop redirected to {location!r}; "
                                   "check the shop URL's scheme and host", status=status)
        raise api_error_from(status=status, body=body,
                             retry_after_seconds=_retry_after_seconds(response.headers.get("Retry-After")))

    def get(self, route: str, **params: Any) -> Any:
        """The decoded body of a GET of `route` with `params` as its query."""
        return self.request("GET", route, params=params or None).body
