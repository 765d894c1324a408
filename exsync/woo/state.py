"""The reconciler's small key/value state (its watermarks), behind an interface that can move into the state DB."""

import json
import os
import tempfile
import threading

from exsync.woo.errors import StateStoreError

__all__ = ["DEFAULT_STATE_FILE_NAME", "JsonFileStore", "MemoryStore", "StateStore"]

DEFAULT_STATE_FILE_NAME = "woo-state.json"


class StateStore:
    """Get and set string values by key; implementations must make a `set` durable before returning."""

    def get(self, key):
        raise NotImplementedError

    def set(self, key, value):
        raise NotImplementedError


class MemoryStore(StateStore):
    """Keeps values in the process (tests, one-off runs)."""

    def __init__(self):
        self._values = {}

    def get(self, key):
        return self._values.get(key)

    def set(self, key, value):
        self._values[key] = value


class JsonFileStore(StateStore):
    """One JSON file under `directory`, replaced atomically on every `set`."""

    def __init__(self, *, directory, file_name=DEFAULT_STATE_FILE_NAME):
        self.path = os.path.join(directory, file_name)
        self._directory = directory
        self._lock = threading.Lock()

    def _read(self):
        try:
            with open(self.path, encoding="utf-8") as handle:
                values = json.load(handle)
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as error:
            raise StateStoreError(f"cannot read {self.path}: {error}") from error
        if not isinstance(values, dict):
            raise StateStoreError(f"{self.path} does not hold a JSON object")
        return values

    def get(self, key):
        with self._lock:
            return self._read().get(key)

    def set(self, key, value):
        with self._lock:
            values = self._read()
            values[key] = value
            try:
                os.makedirs(self._directory, exist_ok=True)
                handle, temporary = tempfile.mkstemp(dir=self._directory, prefix=".woo-state-")
                with os.fdopen(handle, "w", encoding="utf-8") as output:
                    json.dump(values, output, indent=2, sort_keys=True)
                    output.flush()
                    os.fsync(output.fileno())
                os.replace(temporary, self.path)
            except OSError as error:
                raise StateStoreError(f"cannot write {self.path}: {error}") from error
