"""Everything that knows Advanced Exchequer."""

__all__ = []
