"""The sandbox shop's own error: a request it refuses, as WooCommerce would refuse it.

It hangs off exsync's root rather than the `exsync.woo` tree: the sandbox plays the *server*, and
nothing in the REST client ever sees this class (the client only sees the error body it renders).
"""

from typing import Any

from exsync.errors import ExsyncError

__all__ = ["SandboxRestError"]


class SandboxRestError(ExsyncError):
    """Inside the sandbox shop: a request it refuses, rendered as WooCommerce's error body."""

    def __init__(self, code: str, message: str, status: int, data: Any = None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.code = code
        self.message = message
        self.status = status
        self.data = data
