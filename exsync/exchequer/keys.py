"""exsync's own record of what each external key (a shop order, a shop customer) became in Exchequer:
the `external_keys` state table, for writers that do not keep it in the same transaction as the write
(the agent path: the Toolkit saves on the Exchequer server, exsync records the answer here)."""

from typing import cast

from exsync.exchequer.db import Database
from exsync.exchequer.errors import DuplicateKeyError
from exsync.exchequer.ledger import require_account

__all__ = ["KeyStore"]


class KeyStore:
    """External keys in the state database; accounts checked in the company (a read)."""

    def __init__(self, *, state: Database, company: Database) -> None:
        self.state = state
        self.company = company

    def existing_reference(self, kind: str, external_key: str) -> str | None:
        with self.state.transaction(write=False) as cursor:
            return cursor.scalar("SELECT {external_keys.reference} FROM {external_keys} "
                                 "WHERE {external_keys.kind} = ? AND {external_keys.external_key} = ?",
                                 (kind, external_key)) or None

    def keys_of(self, kind: str, reference: str, *, prefix: str = "") -> list[str]:
        with self.state.transaction(write=False) as cursor:
            rows = cursor.run("SELECT {external_keys.external_key} FROM {external_keys} "
                              "WHERE {external_keys.kind} = ? AND {external_keys.reference} = ? "
                              "AND {external_keys.external_key} LIKE ? ORDER BY {external_keys.external_key}",
                              (kind, reference, prefix + "%")).fetchall()
        return [row[0] for row in rows]

    def record(self, kind: str, external_key: str, reference: str) -> str:
        """Records a key's reference; the first record stands (returns the reference the key has)."""
        try:
            with self.state.transaction() as cursor:
                cursor.run("INSERT INTO {external_keys} ({external_keys.kind}, {external_keys.external_key}, "
                           "{external_keys.reference}) VALUES (?, ?, ?)", (kind, external_key, reference))
        except DuplicateKeyError:
            # The unique key that refused the row says it is there.
            return cast(str, self.existing_reference(kind, external_key))
        return reference

    def link_account(self, *, external_key: str, code: str) -> str:
        with self.company.transaction(write=False) as cursor:
            code = require_account(cursor, code)
        return self.record("account", external_key, code)
