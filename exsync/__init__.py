"""exsync keeps a WooCommerce shop and an Advanced Exchequer company in step."""

__all__ = ["__version__"]

__version__ = "0.1.0"
