"""Consumers: one module per queue and the rules they apply."""

__all__ = []
