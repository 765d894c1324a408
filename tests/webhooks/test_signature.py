import base64
import hashlib
import hmac

from exsync.webhooks.signature import compute_signature, verify_signature, wordpress_specialchars_decode
from tests.support.woo import fixture, woo_json


def independent_signature(body, secret_bytes):
    return base64.b64encode(hmac.new(secret_bytes, body, hashlib.sha256).digest()).decode()


def test_signature_is_base64_hmac_sha256_of_the_raw_body():
    body = woo_json(fixture("order_727.json"))
    assert compute_signature(body, "secret") == independent_signature(body, b"secret")


def test_a_stored_secret_is_html_entity_decoded_before_signing():
    body = b'{"id":1}'
    # WooCommerce stores `a&b` as `a&amp;b` and signs with `a&b`.
    assert compute_signature(body, "a&amp;b") == independent_signature(body, b"a&b")
    assert verify_signature(body, independent_signature(body, b"a&b"), ["a&amp;b"])


def test_only_the_entities_wordpress_decodes_are_decoded():
    # wp_specialchars_decode(..., ENT_QUOTES): &, <, >, " and ' in their named and numeric forms.
    assert wordpress_specialchars_decode("&amp;&lt;&gt;&quot;&#039;") == "&<>\"'"
    assert wordpress_specialchars_decode("&#38;&#0038;&#x26;&#X026;&#60;&#062;&#34;&#x22;&#39;&#x27;") == "&&&&<>\"\"''"
    # Everything else stays as typed (html.unescape would decode all of these).
    for kept in ("&eacute;", "&#65;", "&copy", "&nbsp;", "&apos;", "&AMP;", "&amp"):
        assert wordpress_specialchars_decode(kept) == kept
    # One pass: a decoded `&` does not start another entity.
    assert wordpress_specialchars_decode("&amp;lt;") == "&lt;"


def test_a_secret_with_other_entities_signs_as_woocommerce_does():
    body = b'{"id":1}'
    assert compute_signature(body, "caf&eacute;&amp;1") == independent_signature(body, b"caf&eacute;&1")


def test_any_configured_secret_verifies_during_rotation():
    body = b'{"id":1}'
    old, new = "old-secret", "new-secret"
    assert verify_signature(body, compute_signature(body, old), [new, old])
    assert verify_signature(body, compute_signature(body, new), [new, old])
    assert not verify_signature(body, compute_signature(body, "other"), [new, old])


def test_only_the_exact_bytes_verify():
    payload = fixture("order_727.json")
    body = woo_json(payload)
    signature = compute_signature(body, "s")
    reserialised = body.replace(b"\\/", b"/")
    assert reserialised != body
    assert not verify_signature(reserialised, signature, ["s"])
    assert not verify_signature(body + b"\n", signature, ["s"])


def test_missing_or_garbage_headers_do_not_verify():
    assert not verify_signature(b"{}", None, ["s"])
    assert not verify_signature(b"{}", "", ["s"])
    assert not verify_signature(b"{}", "not base64 \u00e9", ["s"])
    assert not verify_signature(b"{}", compute_signature(b"{}", "s"), [])
