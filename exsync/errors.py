"""The root of exsync's error tree; each package's errors.py hangs its own off it."""

from collections.abc import Iterable

__all__ = ["ExsyncError", "ConfigError"]


class ExsyncError(Exception):
    """Anything exsync raises on purpose."""


class ConfigError(ExsyncError):
    """The environment or the YAML file is wrong; `problems` holds (path, message) pairs."""

    def __init__(self, problems: Iterable[tuple[str, str]]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(f"{path}: {message}" for path, message in self.problems))
