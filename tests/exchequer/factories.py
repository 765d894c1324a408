"""Builders for the records the Exchequer tests write."""

import datetime

from exsync.exchequer import AccountDetails, DocumentLine, SalesDocument


def order(key, account_code, lines, *, doc_type="SOR", your_ref="1001"):
    """A SalesDocument for the tests: `lines` are (stock_code, qty, unit price, location) tuples."""
    return SalesDocument(
        external_key=key, doc_type=doc_type, account_code=account_code, date=datetime.date(2026, 11, 27),
        your_ref=your_ref, long_your_ref=f"WOO-{your_ref}",
        lines=tuple(DocumentLine(stock_code=code, description=code or "Carriage", qty=qty, unit_net_price=price,
                                 vat_code="S", location=location) for code, qty, price, location in lines))


def customer(company="Castle Hardware Ltd", contact="Jane Smith", email="jane@castle.example", band="A"):
    return AccountDetails(company=company, contact=contact, email=email, price_band=band,
                          address=("1 High Street", "Leeds"), post_code="LS1 1AA")
