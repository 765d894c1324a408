"""How exsync authenticates to WooCommerce: Basic over HTTPS, one-legged OAuth 1.0a over HTTP.

WooCommerce refuses Basic credentials on plain HTTP (it treats them as absent), and over HTTP it
checks an OAuth 1.0a signature with a timestamp within 15 minutes and a nonce it has not seen.
"""

import urllib.parse

import requests.auth
from oauthlib import oauth1

__all__ = ["DEFAULT_SIGNATURE_METHOD", "SIGNATURE_METHODS", "SIGNATURE_TYPES", "OAuth1OneLegged", "auth_for"]

SIGNATURE_METHODS = (oauth1.SIGNATURE_HMAC_SHA256, oauth1.SIGNATURE_HMAC_SHA1)
SIGNATURE_TYPES = {"query": oauth1.SIGNATURE_TYPE_QUERY, "header": oauth1.SIGNATURE_TYPE_AUTH_HEADER}
DEFAULT_SIGNATURE_METHOD = oauth1.SIGNATURE_HMAC_SHA256
DEFAULT_SIGNATURE_TYPE = "query"


class OAuth1OneLegged(requests.auth.AuthBase):
    """Signs each request (a fresh nonce and timestamp per attempt) with the consumer key alone."""

    def __init__(self, *, consumer_key, consumer_secret, signature_method=DEFAULT_SIGNATURE_METHOD,
                 signature_type=DEFAULT_SIGNATURE_TYPE):
        if signature_method not in SIGNATURE_METHODS:
            raise ValueError(f"WooCommerce accepts {', '.join(SIGNATURE_METHODS)}, not {signature_method!r}")
        if signature_type not in SIGNATURE_TYPES:
            raise ValueError(f"signature_type must be one of {', '.join(SIGNATURE_TYPES)}")
        self.consumer_key = consumer_key
        self.consumer_secret = consumer_secret
        self.signature_method = signature_method
        self.signature_type = signature_type

    def __call__(self, request):
        client = oauth1.Client(
            self.consumer_key,
            client_secret=self.consumer_secret,
            signature_method=self.signature_method,
            signature_type=SIGNATURE_TYPES[self.signature_type],
        )
        # WooCommerce signs the query (and form fields), never a JSON body, so the body stays out.
        uri, headers, _ = client.sign(request.url, http_method=request.method)
        request.url = uri
        request.headers.update(headers)
        return request


def auth_for(*, url, consumer_key, consumer_secret, signature_method=DEFAULT_SIGNATURE_METHOD,
             signature_type=DEFAULT_SIGNATURE_TYPE):
    """The authentication WooCommerce expects for the shop's URL scheme."""
    if urllib.parse.urlsplit(url).scheme == "https":
        return requests.auth.HTTPBasicAuth(consumer_key, consumer_secret)
    return OAuth1OneLegged(consumer_key=consumer_key, consumer_secret=consumer_secret,
                           signature_method=signature_method, signature_type=signature_type)
