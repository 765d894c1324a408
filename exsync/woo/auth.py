"""How exsync authenticates to WooCommerce: Basic over HTTPS, one-legged OAuth 1.0a over HTTP.

WooCommerce refuses Basic credentials on plain HTTP (it treats them as absent), and over HTTP it
checks an OAuth 1.0a signature with a timestamp within 15 minutes and a nonce it has not seen.
requests-oauthlib signs each prepared request afresh (a new nonce and timestamp per attempt), and
leaves a JSON body out of the signature, as WooCommerce expects.
"""

import logging
import urllib.parse

import requests.auth
from oauthlib import oauth1
from requests_oauthlib import OAuth1

__all__ = ["DEFAULT_SIGNATURE_METHOD", "DEFAULT_SIGNATURE_TYPE", "SIGNATURE_METHODS", "SIGNATURE_TYPES", "auth_for"]

SIGNATURE_METHODS = (oauth1.SIGNATURE_HMAC_SHA256, oauth1.SIGNATURE_HMAC_SHA1)
SIGNATURE_TYPES = {"query": oauth1.SIGNATURE_TYPE_QUERY, "header": oauth1.SIGNATURE_TYPE_AUTH_HEADER}
DEFAULT_SIGNATURE_METHOD = oauth1.SIGNATURE_HMAC_SHA256
DEFAULT_SIGNATURE_TYPE = "query"

# requests-oauthlib logs every signed URL (consumer key and signature in the query) at DEBUG:
# those lines must never reach exsync's logs, whatever level a site sets.
logging.getLogger("requests_oauthlib").setLevel(logging.WARNING)


def auth_for(*, url: str, consumer_key: str, consumer_secret: str,
             signature_method: str = DEFAULT_SIGNATURE_METHOD,
             signature_type: str = DEFAULT_SIGNATURE_TYPE) -> requests.auth.AuthBase:
    """The authentication WooCommerce expects for the shop's URL scheme."""
    if urllib.parse.urlsplit(url).scheme == "https":
        return requests.auth.HTTPBasicAuth(consumer_key, consumer_secret)
    if signature_method not in SIGNATURE_METHODS:
        raise ValueError(f"WooCommerce accepts {', '.join(SIGNATURE_METHODS)}, not {signature_method!r}")
    if signature_type not in SIGNATURE_TYPES:
        raise ValueError(f"signature_type must be one of {', '.join(SIGNATURE_TYPES)}")
    return OAuth1(consumer_key, client_secret=consumer_secret, signature_method=signature_method,
                  signature_type=SIGNATURE_TYPES[signature_type])
