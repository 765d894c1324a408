"""How the sandbox authenticates REST calls, following WooCommerce's `WC_REST_Authentication`.

Over HTTPS: Basic (or `consumer_key`/`consumer_secret` query parameters). Over plain HTTP: one-legged
OAuth 1.0a only, verified the way WooCommerce does it (parameters from the query, form body and
`Authorization: OAuth` header, sorted and RFC 3986-encoded, keyed with `<secret>&`), with a
timestamp within 15 minutes and a nonce used once. Basic over HTTP counts as no credentials.
"""

import base64
import dataclasses
import hashlib
import hmac
import threading
import time
import urllib.parse
from collections.abc import Callable, Mapping

from werkzeug.datastructures import Headers

from exsync.sandbox.errors import SandboxRestError

__all__ = ["OAUTH_WINDOW_SECONDS", "Authenticator", "Credentials"]

OAUTH_WINDOW_SECONDS = 15 * 60
OAUTH_REQUIRED = ("oauth_consumer_key", "oauth_timestamp", "oauth_nonce", "oauth_signature",
                  "oauth_signature_method")
HASHES = {"HMAC-SHA1": hashlib.sha1, "HMAC-SHA256": hashlib.sha256}


@dataclasses.dataclass(frozen=True, kw_only=True)
class Credentials:
    """A WooCommerce REST API key: `read`, `write` or `read_write`."""

    consumer_key: str
    consumer_secret: str
    user_id: int = 1
    permissions: str = "read_write"


def _rfc3986(text: object) -> str:
    return urllib.parse.quote(str(text), safe="~")


def _auth_error(message: str) -> SandboxRestError:
    return SandboxRestError("woocommerce_rest_authentication_error", message, 401)


class Authenticator:
    """Finds the API key a request was made with; raises SandboxRestError for failed attempts."""

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self._keys: dict[str, Credentials] = {}
        self._nonces: dict[str, dict[str, int]] = {}
        self._lock = threading.Lock()
        self._clock = clock

    def add(self, credentials: Credentials) -> Credentials:
        with self._lock:
            self._keys[credentials.consumer_key] = credentials
        return credentials

    def authenticate(self, *, method: str, base_url: str, path: str, https: bool, query: Mapping[str, str],
                     form: Mapping[str, str], headers: Mapping[str, str] | Headers,
                     basic: tuple[str, str] | None) -> Credentials | None:
        """The Credentials used, None when none were offered (the caller answers `cannot_view`)."""
        if https:
            return self._basic(query, basic)
        return self._oauth(method=method, base_url=base_url, path=path, query=query, form=form, headers=headers)

    def _basic(self, query: Mapping[str, str], basic: tuple[str, str] | None) -> Credentials | None:
        key: str | None
        secret: str | None
        if basic is not None:
            key, secret = basic
        else:
            key, secret = query.get("consumer_key"), query.get("consumer_secret")
        if not key or not secret:
            return None
        credentials = self._keys.get(key)
        if credentials is None:
            return None
        if not hmac.compare_digest(credentials.consumer_secret.encode(), str(secret).encode()):
            raise _auth_error("Consumer secret is invalid.")
        return credentials

    def _oauth(self, *, method: str, base_url: str, path: str, query: Mapping[str, str], form: Mapping[str, str],
               headers: Mapping[str, str] | Headers) -> Credentials | None:
        params = dict(query)
        params.update(form)
        header = (headers.get("Authorization") or "").strip()
        if header[:6].lower() == "oauth ":
            for part in header[6:].split(","):
                name, _, value = part.strip().partition("=")
                if name and name.lower() != "realm":
                    params[name] = urllib.parse.unquote(value.strip().strip('"'))
        missing = [name for name in OAUTH_REQUIRED if not params.get(name)]
        if len(missing) == len(OAUTH_REQUIRED):
            return None
        if missing:
            raise _auth_error(f"Missing OAuth parameter {', '.join(missing)}")
        credentials = self._keys.get(params["oauth_consumer_key"])
        if credentials is None:
            raise _auth_error("Consumer key is invalid.")
        digest = HASHES.get(params["oauth_signature_method"])
        if digest is None:
            raise _auth_error("Invalid signature - signature method is invalid.")
        provided = urllib.parse.unquote(params.pop("oauth_signature").replace(" ", "+"))
        normalised = sorted((_rfc3986(key), _rfc3986(value)) for key, value in params.items())
        query_string = "%26".join(_rfc3986(f"{key}={value}") for key, value in normalised)
        string_to_sign = f"{method.upper()}&{_rfc3986(base_url + path)}&{query_string}"
        expected = base64.b64encode(hmac.new(f"{credentials.consumer_secret}&".encode(), string_to_sign.encode(),
                                             digest).digest()).decode()
        if not hmac.compare_digest(expected, provided):
            raise _auth_error("Invalid signature - provided signature does not match.")
        self._check_timestamp_and_nonce(credentials.consumer_key, params["oauth_timestamp"], params["oauth_nonce"])
        return credentials

    def _check_timestamp_and_nonce(self, key: str, timestamp: str, nonce: str) -> None:
        now = self._clock()
        try:
            stamp = int(timestamp)
        except ValueError:
            raise _auth_error("Invalid timestamp.") from None
        if stamp < now - OAUTH_WINDOW_SECONDS or stamp > now + OAUTH_WINDOW_SECONDS:
            raise _auth_error("Invalid timestamp.")
        with self._lock:
            used = self._nonces.setdefault(key, {})
            for old_nonce, old_stamp in list(used.items()):
                if old_stamp < now - OAUTH_WINDOW_SECONDS:
                    del used[old_nonce]
            if nonce in used:
                raise _auth_error("Invalid nonce - nonce has already been used.")
            used[nonce] = stamp
