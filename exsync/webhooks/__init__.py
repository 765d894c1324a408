"""The WooCommerce webhook receiver (Flask under gunicorn)."""

__all__ = []
