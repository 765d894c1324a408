"""Everything that knows WooCommerce's REST API, and the sandbox shop."""

__all__ = []
