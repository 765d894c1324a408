"""WooCommerce's date strings: `YYYY-MM-DDTHH:MM:SS`, no zone; the `_gmt` fields are UTC."""

import datetime

__all__ = ["format_wc_datetime", "parse_wc_gmt", "utc_now"]


def utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def format_wc_datetime(value: datetime.datetime) -> str:
    """The form WooCommerce writes and accepts in filters; an aware value is converted to UTC first."""
    if value.tzinfo is not None:
        value = value.astimezone(datetime.UTC).replace(tzinfo=None)
    return value.replace(microsecond=0).isoformat()


def parse_wc_gmt(text: object) -> datetime.datetime | None:
    """Reads a `*_gmt` field as an aware UTC datetime (None stays None)."""
    if not text:
        return None
    value = datetime.datetime.fromisoformat(str(text))
    if value.tzinfo is None:
        return value.replace(tzinfo=datetime.UTC)
    return value.astimezone(datetime.UTC)
