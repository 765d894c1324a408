"""SentProducts: the capture's compact record of what was sent, one int per SKU."""

from exsync.exchequer.product_scan import SentProducts, fingerprint


def test_the_record_keeps_fingerprint_and_quantity_apart_even_for_odd_stored_values():
    digest = fingerprint("Widget", "1.00", "0.80", "Tools")
    sent = SentProducts.from_rows([("A1", digest, 5), ("B2", digest, -3), ("C3", "not a digest", 0)])
    raw = 1 << 63 | 12345
    assert len(sent) == 3 and "A1" in sent and "Z9" not in sent
    assert sent.compare("A1", raw, digest, 5) == (False, False)
    assert sent.compare("A1", raw, digest, 6) == (False, True)
    assert sent.compare("B2", raw, digest, -3) == (False, False)
    assert sent.compare("B2", raw, fingerprint("Widget", "1.01", "0.80", "Tools"), -3) == (True, False)
    # A stored value that is no digest equals no fingerprint: the product counts as changed.
    assert sent.compare("C3", raw, digest, 0) == (True, False)
    assert sent.compare("Z9", raw, digest, 1) is None
    sent.set("Z9", raw, digest, 1)
    assert sent.compare("Z9", raw, digest, 1) == (False, False)
