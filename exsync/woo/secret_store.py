"""The registrar's record in the state database: per shop and webhook, the fingerprint of the
secret (and API version) exsync last set, so that `register-webhooks` and every reconcile pass
write nothing to an unchanged shop, across restarts. The secret itself is never stored."""

from exsync.exchequer import DuplicateKeyError
from exsync.exchequer.mapping import Column
from exsync.exchequer.state import StateTable, create_state_tables
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
    """The record of one shop (by its URL) in the state tables; a Database serves one thread."""

    def __init__(self, *, database, shop_url):
        self.database = database
        self.shop = shop_url.rstrip("/")
        self.table_sql = WEBHOOK_SECRET_TABLES[0].sql_name(database)
        create_state_tables(database, WEBHOOK_SECRET_TABLES)

    def get(self, webhook_id):
        with self.database.transaction(write=False) as cursor:
            row = cursor.execute(f'SELECT "fingerprint" FROM {self.table_sql} WHERE "shop" = ? AND "webhook_id" = ?',
                                 (self.shop, int(webhook_id))).fetchone()
        return row[0] if row else None

    def set(self, webhook_id, fingerprint):
        try:
            self._write(webhook_id, fingerprint)
        except DuplicateKeyError:
            # Another registrar inserted it between our UPDATE and INSERT: update theirs (last one wins,
            # as on the shop itself), in a new transaction since the failed one is spent.
            self._write(webhook_id, fingerprint)

    def _write(self, webhook_id, fingerprint):
        with self.database.transaction() as cursor:
            cursor.execute(f'UPDATE {self.table_sql} SET "fingerprint" = ? WHERE "shop" = ? AND "webhook_id" = ?',
                           (fingerprint, self.shop, int(webhook_id)))
            if cursor.rowcount == 0:
                cursor.execute(f'INSERT INTO {self.table_sql} ("shop", "webhook_id", "fingerprint") VALUES (?, ?, ?)',
                               (self.shop, int(webhook_id), fingerprint))

    def forget(self, webhook_id):
        with self.database.transaction() as cursor:
            cursor.execute(f'DELETE FROM {self.table_sql} WHERE "shop" = ? AND "webhook_id" = ?',
                           (self.shop, int(webhook_id)))
