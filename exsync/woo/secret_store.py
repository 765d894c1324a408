"""The registrar's record in the state database: per shop and webhook, the fingerprint of the
secret (and API version) exsync last set, so that `register-webhooks` and every reconcile pass
write nothing to an unchanged shop, across restarts. The secret itself is never stored."""

import threading

from exsync.exchequer import DuplicateKeyError, ExchequerError
from exsync.exchequer.mapping import Column
from exsync.state import StateTable, create_state_tables
from exsync.woo.errors import StateStoreError
from exsync.woo.registrar import SecretRecord

__all__ = ["WEBHOOK_SECRET_TABLES", "WebhookSecretStore"]

WEBHOOK_SECRET_TABLES = (
    StateTable(name="webhook_secrets", key=("shop", "webhook_id"), columns={
        "shop": Column("shop", "str:255"),
        "webhook_id": Column("webhook_id", "int"),
        # hex HMAC-SHA256 (see registrar.secret_fingerprint)
        "fingerprint": Column("fingerprint", "str:64"),
    }),
)


class WebhookSecretStore(SecretRecord):
    """The record of one shop (by its URL) in the state tables.

    `connect` opens the state Database; a failed statement drops the connection (the next call
    opens a new one) and raises StateStoreError, a WooError, so the reconciler's loop logs it and
    carries on as it does when the shop is away.
    """

    def __init__(self, *, connect, shop_url):
        self._connect = connect
        self.shop = shop_url.rstrip("/")
        self._database = None
        self._lock = threading.Lock()

    @property
    def table_sql(self):
        return WEBHOOK_SECRET_TABLES[0].sql_name(self._open())

    def _open(self):
        if self._database is None:
            database = self._connect()
            try:
                create_state_tables(database, WEBHOOK_SECRET_TABLES)
            except BaseException:
                database.close()
                raise
            self._database = database
        return self._database

    def _run(self, work):
        with self._lock:
            try:
                database = self._open()
                with database.transaction() as cursor:
                    return work(cursor, WEBHOOK_SECRET_TABLES[0].sql_name(database))
            except DuplicateKeyError:
                raise
            except ExchequerError as error:
                self.close()
                raise StateStoreError(f"the webhook secret record is unavailable: {error}") from error

    def get(self, webhook_id):
        def read(cursor, table):
            return cursor.execute(f'SELECT "fingerprint" FROM {table} WHERE "shop" = ? AND "webhook_id" = ?',
                                  (self.shop, int(webhook_id))).fetchone()

        row = self._run(read)
        return row[0] if row else None

    def set(self, webhook_id, fingerprint):
        def write(cursor, table):
            cursor.execute(f'UPDATE {table} SET "fingerprint" = ? WHERE "shop" = ? AND "webhook_id" = ?',
                           (fingerprint, self.shop, int(webhook_id)))
            if cursor.rowcount == 0:
                cursor.execute(f'INSERT INTO {table} ("shop", "webhook_id", "fingerprint") VALUES (?, ?, ?)',
                               (self.shop, int(webhook_id), fingerprint))

        try:
            self._run(write)
        except DuplicateKeyError:
            # Another registrar inserted it between our UPDATE and INSERT: update theirs (the last one
            # wins, as on the shop itself), in a new transaction since the failed one is spent.
            self._run(write)

    def forget(self, webhook_id):
        self._run(lambda cursor, table: cursor.execute(f'DELETE FROM {table} WHERE "shop" = ? AND "webhook_id" = ?',
                                                       (self.shop, int(webhook_id))))

    def close(self):
        if self._database is not None:
            database, self._database = self._database, None
            database.close()
