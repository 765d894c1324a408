"""Two-way customer sync: shop customers and Exchequer customer accounts kept in step.

One merge serves both directions. `customers.import` carries the shop's `customer.*` webhooks (and
the reconciler's); `customers.export` carries capture's `exchequer.account.changed`. Either way an
event only says which customer to look at: both sides are read as they are now, so a late or
repeated event cannot undo a newer change. The two views are merged three ways against the
snapshot stored with the link when both last agreed: a field changed on one side goes to the
other; a field both changed differently is decided by the field's policy (`woo`, `exchequer`,
`newest`, or `manual`, which changes neither side and records the conflict for a person). Under
`newest` a tie (both sides changed within the same second: the shop keeps whole seconds, so the
order cannot be known) is not a win for either side: it becomes a conflict for a person. Every
decision a policy makes between two values is recorded (field, both values, the policy, the
winner) in `customer_decisions`, listed by `exsync customers conflicts --all`. The
snapshot becomes what both sides now hold, so the shop's webhook for our own write, or capture
seeing our own account update, merges to "unchanged" and nothing echoes.

A sync claims its customer (a lease on the link row) before it reads either side, so the two
consumers, a command and a retry never sync one customer at once; the snapshot is also saved
only if its version is still the one read, in case a lease ran out mid-sync. The link itself is
the external key `woo-customer:<id>` the orders consumer also uses (see customer_accounts).
"""

import dataclasses
import json
import logging
import math
import os
import secrets
import socket
import time

from exsync.bus import EXCHEQUER_EXCHANGE, WOO_EXCHANGE, PermanentError, QueueSpec
from exsync.consumers.connections import ExchequerConnections, fresh_after_failure
from exsync.consumers.customer_accounts import account_for_shop_customer, customer_key, shop_customers_of
from exsync.consumers.customer_mapping import (
    FIELDS,
    AccountFitter,
    account_changes,
    account_view,
    billing_details,
    merge,
    woo_changes,
    woo_view,
)
from exsync.consumers.errors import ConsumerError, CustomerBusyError, LinkChangedError
from exsync.exchequer import (
    DuplicateKeyError,
    InvalidDocumentError,
    UnknownAccountError,
    mapping_for,
    options_for,
)
from exsync.exchequer.account_capture import account_fingerprint, ensure_account_state, recorded_account
from exsync.exchequer.mapping import Column
from exsync.exchequer.state import StateTable, create_state_tables, text_column
from exsync.metrics import Metrics
from exsync.threads import PerThread
from exsync.woo import WooApiError, WooBadRequest, WooNotFound
from exsync.woo.dates import parse_wc_gmt

__all__ = [
    "CUSTOMER_TABLES",
    "DEFAULT_CLAIM_SECONDS",
    "LINKED",
    "SHOP_DELETED",
    "Conflict",
    "CustomersConsumer",
    "Decision",
    "Link",
    "LinkStore",
    "EXPORT_QUEUE",
    "QUEUE",
]

log = logging.getLogger(__name__)

LINKED = "linked"
SHOP_DELETED = "shop_deleted"
# Longer than the slowest shop call with its retries (5 attempts of 30 s); renewed before each write.
DEFAULT_CLAIM_SECONDS = 300.0
# the shop's customer events (`exsync consume customers`) and Exchequer's account changes
# (`exsync consume customers-export`): one consumer class, two queues
QUEUE = QueueSpec(name="customers.import", exchange=WOO_EXCHANGE, binding_keys=("customer.*",))
EXPORT_QUEUE = QueueSpec(name="customers.export", exchange=EXCHEQUER_EXCHANGE, binding_keys=("account.*",))
_EMAIL_TAKEN = "registration-error-email-exists"
_NO_SUCH_CUSTOMER = "woocommerce_rest_invalid_id"
# WooCommerce 9.5+ lets REST change the e-mail of these roles only.
EMAIL_EDITABLE_ROLES = ("customer", "subscriber")
EXSYNC_ACCOUNT_META = "_exsync_account"

CUSTOMER_TABLES = (
    StateTable(name="customer_links", key=("woo_id",), columns={
        "woo_id": Column("woo_id", "int"),
        "account_code": Column("account_code", "str:10"),
        "state": Column("state", "str:16"),
        "snapshot": text_column("snapshot"),
        "version": Column("version", "int"),
        "synced_at": Column("synced_at", "float"),
        "claimed_by": Column("claimed_by", "str:100"),
        "claimed_until": Column("claimed_until", "float"),
    }),
    StateTable(name="customer_conflicts", key=("woo_id", "field"), columns={
        "woo_id": Column("woo_id", "int"),
        "field": Column("field", "str:16"),
        "account_code": Column("account_code", "str:10"),
        "woo_value": Column("woo_value", "str:1000"),
        "exchequer_value": Column("exchequer_value", "str:1000"),
        "base_value": Column("base_value", "str:1000"),
        "noticed_at": Column("noticed_at", "float"),
    }),
    # every value a policy (or a person) decided against: nothing overridden without a trace
    StateTable(name="customer_decisions", key=("woo_id", "field", "decided_at"), columns={
        "woo_id": Column("woo_id", "int"),
        "field": Column("field", "str:16"),
        "decided_at": Column("decided_at", "float"),
        "account_code": Column("account_code", "str:10"),
        "woo_value": Column("woo_value", "str:1000"),
        "exchequer_value": Column("exchequer_value", "str:1000"),
        "base_value": Column("base_value", "str:1000"),
        "policy": Column("policy", "str:16"),
        "winner": Column("winner", "str:16"),
    }),
)


def _made_for(customer):
    """The account code a shop customer was created for by the export, from its meta (or None)."""
    for meta in customer.get("meta_data") or []:
        if isinstance(meta, dict) and meta.get("key") == EXSYNC_ACCOUNT_META and meta.get("value"):
            return str(meta["value"])
    return None


def _dump(view):
    return json.dumps(view, sort_keys=True)


def _updated(cursor):
    """Rows an UPDATE matched; the lease and the version check are meaningless without it."""
    if cursor.rowcount < 0:
        raise ConsumerError("the state database's driver does not report updated rows")
    return cursor.rowcount


@dataclasses.dataclass(kw_only=True)
class Link:
    """A shop customer linked to an account, with the view both sides last agreed on.

    `version` counts the saves; a save is refused (LinkChangedError) when the stored version is no
    longer the one read, so a sync never stores a snapshot over a newer one.
    """

    woo_id: int
    account_code: str
    state: str = LINKED
    snapshot: dict | None = None
    version: int = 0
    synced_at: float = 0.0


@dataclasses.dataclass(frozen=True, kw_only=True)
class Conflict:
    """A field both sides changed differently, waiting for a person (`exsync customers resolve`)."""

    woo_id: int
    field: str
    account_code: str
    woo_value: object
    exchequer_value: object
    base_value: object
    noticed_at: float


@dataclasses.dataclass(frozen=True, kw_only=True)
class Decision:
    """A field both sides held differently, and who decided which value stays (`winner`: woo,
    exchequer, or manual when it was left for a person); the loser's value is kept here."""

    woo_id: int
    field: str
    account_code: str
    woo_value: object
    exchequer_value: object
    base_value: object
    policy: str
    winner: str
    decided_at: float


def _cut(value):
    """A value as stored in a 1,000-character column (JSON, cut rather than refused)."""
    return json.dumps(value)[:1000]


def _loads(text):
    try:
        return json.loads(text)
    except ValueError:
        return text  # cut to the column: shown as stored


class LinkStore:
    """The sync's own tables: links with their snapshots and claims, and conflicts awaiting a person."""

    def __init__(self, *, database):
        self.database = database
        self.links_sql = CUSTOMER_TABLES[0].sql_name(database)
        self.conflicts_sql = CUSTOMER_TABLES[1].sql_name(database)
        self.decisions_sql = CUSTOMER_TABLES[2].sql_name(database)
        create_state_tables(database, CUSTOMER_TABLES)

    def _link(self, where, value):
        # An account linked to a customer deleted in the shop and to one who registered again: the live one.
        with self.database.transaction(write=False) as cursor:
            row = cursor.execute(f'SELECT "woo_id", "account_code", "state", "snapshot", "version", "synced_at" '
                                 f'FROM {self.links_sql} WHERE "{where}" = ? AND "version" > 0 '
                                 f'ORDER BY CASE WHEN "state" = ? THEN 0 ELSE 1 END, "woo_id" DESC',
                                 (value, LINKED)).fetchone()
        if row is None:
            return None
        return Link(woo_id=int(row[0]), account_code=row[1], state=row[2], snapshot=json.loads(row[3]) if row[3]
                    else None, version=int(row[4]), synced_at=float(row[5]))

    def get(self, woo_id):
        """The link of shop customer `woo_id`, or None."""
        return self._link("woo_id", int(woo_id))

    def by_account(self, code):
        """The link of account `code`, or None."""
        return self._link("account_code", code)

    def claim(self, woo_id, *, holder, now, seconds):
        """Takes the customer's lease for `seconds`; False while another holder's lease runs."""
        with self.database.transaction() as cursor:
            cursor.execute(f'UPDATE {self.links_sql} SET "claimed_by" = ?, "claimed_until" = ? WHERE "woo_id" = ? '
                           f'AND ("claimed_until" < ? OR "claimed_by" = ?)', (holder, now + seconds, int(woo_id),
                                                                             now, holder))
            if _updated(cursor):
                return True
            try:
                # A customer never synced gets a row holding only the claim (version 0: no link yet).
                cursor.execute(f'INSERT INTO {self.links_sql} ("woo_id", "claimed_by", "claimed_until") '
                               f'VALUES (?, ?, ?)', (int(woo_id), holder, now + seconds))
            except DuplicateKeyError:
                return False
            return True

    def renew(self, woo_id, *, holder, now, seconds):
        """Extends `holder`'s own lease, even one run out that nobody took; False once another holder
        claimed the customer, even if they have released it since (they may have written)."""
        with self.database.transaction() as cursor:
            cursor.execute(f'UPDATE {self.links_sql} SET "claimed_until" = ? WHERE "woo_id" = ? AND "claimed_by" = ?',
                           (now + seconds, int(woo_id), holder))
            return bool(_updated(cursor))

    def release(self, woo_id, *, holder):
        with self.database.transaction() as cursor:
            cursor.execute(f'UPDATE {self.links_sql} SET "claimed_until" = 0 WHERE "woo_id" = ? AND "claimed_by" = ?',
                           (int(woo_id), holder))

    def save(self, link):
        """Stores the link if its version is still the one read; LinkChangedError otherwise."""
        with self.database.transaction() as cursor:
            cursor.execute(f'UPDATE {self.links_sql} SET "account_code" = ?, "state" = ?, "snapshot" = ?, '
                           f'"version" = ?, "synced_at" = ? WHERE "woo_id" = ? AND "version" = ?',
                           (link.account_code, link.state, _dump(link.snapshot) if link.snapshot is not None else "",
                            link.version + 1, link.synced_at, link.woo_id, link.version))
            if not _updated(cursor):
                raise LinkChangedError(f"shop customer {link.woo_id} was synced by another worker meanwhile")
        link.version += 1

    def record_conflicts(self, woo_id, account_code, conflicts, *, now):
        """Keeps the conflicts found for a customer, and drops its earlier ones that no longer stand."""
        with self.database.transaction() as cursor:
            cursor.execute(f'DELETE FROM {self.conflicts_sql} WHERE "woo_id" = ?', (int(woo_id),))
            cursor.executemany(
                f'INSERT INTO {self.conflicts_sql} ("woo_id", "field", "account_code", "woo_value", '
                f'"exchequer_value", "base_value", "noticed_at") VALUES (?, ?, ?, ?, ?, ?, ?)',
                [(int(woo_id), field, account_code, json.dumps(woo_value), json.dumps(exchequer_value),
                  json.dumps(base_value), now) for field, woo_value, exchequer_value, base_value in conflicts])

    def conflicts(self, woo_id=None):
        """The conflicts waiting, of one customer or of all."""
        where, params = ('WHERE "woo_id" = ?', (int(woo_id),)) if woo_id is not None else ("", ())
        with self.database.transaction(write=False) as cursor:
            rows = cursor.execute(f'SELECT "woo_id", "field", "account_code", "woo_value", "exchequer_value", '
                                  f'"base_value", "noticed_at" FROM {self.conflicts_sql} {where} '
                                  f'ORDER BY "woo_id", "field"', params).fetchall()
        return [Conflict(woo_id=int(row[0]), field=row[1], account_code=row[2], woo_value=json.loads(row[3]),
                         exchequer_value=json.loads(row[4]), base_value=json.loads(row[5]),
                         noticed_at=float(row[6])) for row in rows]

    def record_decisions(self, woo_id, account_code, decisions, *, now):
        """Keeps every decision a policy (or a person) made between two values of a customer."""
        rows = []
        for offset, (field, woo_value, exchequer_value, base_value, policy, winner) in enumerate(decisions):
            # Decisions of one sync share its time; the offset keeps each its own key.
            rows.append((int(woo_id), field, now + offset * 1e-6, account_code, _cut(woo_value),
                         _cut(exchequer_value), _cut(base_value), policy, winner))
        with self.database.transaction() as cursor:
            cursor.executemany(
                f'INSERT INTO {self.decisions_sql} ("woo_id", "field", "decided_at", "account_code", "woo_value", '
                f'"exchequer_value", "base_value", "policy", "winner") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)', rows)

    def decisions(self, woo_id=None):
        """The decisions recorded, of one customer or of all, newest first."""
        where, params = ('WHERE "woo_id" = ?', (int(woo_id),)) if woo_id is not None else ("", ())
        with self.database.transaction(write=False) as cursor:
            rows = cursor.execute(f'SELECT "woo_id", "field", "account_code", "woo_value", "exchequer_value", '
                                  f'"base_value", "policy", "winner", "decided_at" FROM {self.decisions_sql} '
                                  f'{where} ORDER BY "decided_at" DESC, "woo_id", "field"', params).fetchall()
        return [Decision(woo_id=int(row[0]), field=row[1], account_code=row[2], woo_value=_loads(row[3]),
                         exchequer_value=_loads(row[4]), base_value=_loads(row[5]), policy=row[6], winner=row[7],
                         decided_at=float(row[8])) for row in rows]

    def waiting(self):
        """How many conflicts wait for a person."""
        with self.database.transaction(write=False) as cursor:
            return int(cursor.execute(f"SELECT COUNT(*) FROM {self.conflicts_sql}").fetchone()[0])


class _Connections(ExchequerConnections):
    """One thread's connections, with the sync's link store over the state tables."""

    def __init__(self, **connections):
        super().__init__(**connections)
        self.links = LinkStore(database=self.state)
        ensure_account_state(self.state)


class CustomersConsumer:
    """Handles `woo.customer.*` and `exchequer.account.changed` envelopes (one at a time)."""

    def __init__(self, *, exchequer_dsn, config, client, state_dsn=None, wp_username=None,
                 wp_application_password=None, metrics=None, clock=time.time,
                 claim_seconds=DEFAULT_CLAIM_SECONDS, holder=None):
        self.options = config.customers
        self.customer_roles = tuple(config.shop.reconcile.customer_roles)
        self.names_mapping = mapping_for(config)
        self.company = self.names_mapping.company
        self.client = client
        self.wp_username = wp_username
        self.wp_application_password = wp_application_password
        self.metrics = metrics or Metrics()
        self.clock = clock
        self.claim_seconds = claim_seconds
        self.holder = holder or f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self._fit = AccountFitter(mapping=self.names_mapping)
        exchequer_options = options_for(config)
        self._per_thread = PerThread(
            make=lambda: _Connections(exchequer_dsn=exchequer_dsn, state_dsn=state_dsn, mapping=self.names_mapping,
                                      options=exchequer_options, metrics=self.metrics),
            close=_Connections.close)
        self._connections()

    def _connections(self):
        return self._per_thread.get()

    @property
    def links(self):
        return self._connections().links

    def close(self):
        self._per_thread.close()
        self.client.close()

    # --- the consumer interface

    def handle(self, message):
        with fresh_after_failure(self._per_thread):
            self.handle_event(message.event)

    def handle_event(self, event):
        """Syncs the customers an envelope names; returns {id or code: outcome}."""
        kind = str(event.get("type") or "")
        if not self.options.enabled:
            log.info("customers: sync is off (customers.enabled: false); %s dropped", kind or "an event")
            self._count("event", "disabled")
            return {}
        data = event.get("data")
        if kind.startswith("woo.customer."):
            if not isinstance(data, dict) or not str(data.get("id", "")).isdigit():
                raise PermanentError("a customer event needs data with a numeric id")
            woo_id = int(data["id"])
            if kind == "woo.customer.deleted":
                return {woo_id: self.shop_deleted(woo_id)}
            return {woo_id: self.sync_customer(woo_id)}
        if kind == "exchequer.account.changed":
            accounts = (data or {}).get("accounts") if isinstance(data, dict) else None
            if not isinstance(accounts, list):
                raise PermanentError("an account event needs data with a list of accounts")
            return self._sync_accounts([str(item.get("code") or "") for item in accounts if isinstance(item, dict)])
        log.info("customers: nothing to do for %s", kind or "an event without a type")
        return {}

    def _sync_accounts(self, codes):
        """Syncs each account of a capture event; one the shop refuses does not hold up the rest."""
        outcomes, refused, busy = {}, [], []
        for code in codes:
            try:
                outcomes[code] = self.sync_account(code)
            except PermanentError as error:
                outcomes[code] = "refused"
                refused.append(f"{code}: {error}")
                self._count("exchequer", "refused")
            except CustomerBusyError as error:
                outcomes[code] = "busy"
                busy.append(f"{code}: {error}")
        if busy:
            # Retried whole: the accounts synced above are unchanged then, the busy ones go.
            raise CustomerBusyError("; ".join(busy))
        if refused:
            # Parks the event with every reason; the accounts synced above are unchanged when it is replayed.
            raise PermanentError("; ".join(refused))
        return outcomes

    def _renew(self, woo_id):
        """Extends the customer's lease before a write; CustomerBusyError if it passed to another worker."""
        if not self.links.renew(woo_id, holder=self.holder, now=self.clock(), seconds=self.claim_seconds):
            raise CustomerBusyError(f"the lease on shop customer {woo_id} passed to another worker mid-sync")

    def _claimed(self, woo_id, work):
        """Runs `work()` holding the customer's lease; CustomerBusyError (retried) while another holds it."""
        links = self.links
        if not links.claim(woo_id, holder=self.holder, now=self.clock(), seconds=self.claim_seconds):
            raise CustomerBusyError(f"shop customer {woo_id} is being synced by another worker")
        try:
            return work()
        finally:
            links.release(woo_id, holder=self.holder)

    # --- from the shop

    def sync_customer(self, woo_id):
        """Brings one shop customer and its account in step (linking or creating the account)."""
        return self._claimed(woo_id, lambda: self._sync_customer(int(woo_id)))

    def _sync_customer(self, woo_id):
        customer = self._shop_customer(woo_id)
        if customer is None:
            return self._shop_deleted(woo_id)
        if not self._is_customer(customer):
            return self._count("shop", "not_a_customer")
        connections = self._connections()
        link = connections.links.get(woo_id)
        created = False
        if link is None or link.state != LINKED:
            details = billing_details(customer.get("billing") or {}, self._fit, first_name=customer.get("first_name"),
                                      last_name=customer.get("last_name"), email=customer.get("email"))
            if customer.get("role") == self.options.wholesale_role:
                details = dataclasses.replace(details, price_band=self.options.wholesale_band)
            try:
                code, created = account_for_shop_customer(
                    backend=connections.backend, reader=connections.reader, woo_id=woo_id, details=details,
                    match_by_email=self.options.match_by_email, made_for=_made_for(customer),
                    still_linked=lambda other: (held := connections.links.get(other)) is None or held.state == LINKED)
            except InvalidDocumentError as error:
                raise PermanentError(f"cannot create an account for shop customer {woo_id}: {error}") from error
            link = link or Link(woo_id=woo_id, account_code=code)
            link.account_code = code
        created = self._start_from_made(link, customer) or created
        try:
            account = connections.reader.account(link.account_code)
        except UnknownAccountError as error:
            raise PermanentError(f"shop customer {woo_id} is linked to account {link.account_code}, "
                                 "which is no longer in Exchequer") from error
        return self._sync("shop", customer, account, link, created=created)

    def _shop_customer(self, woo_id):
        """The shop customer, or None when the shop says there is no such customer (a missing route,
        a hidden API, is not a deletion: that error goes up and the event is retried)."""
        try:
            return self.client.get_customer(woo_id)
        except WooNotFound as error:
            if error.code == _NO_SUCH_CUSTOMER:
                return None
            raise

    def _is_customer(self, customer):
        return not self.customer_roles or customer.get("role") in self.customer_roles

    def shop_deleted(self, woo_id):
        """The shop deleted a customer: the account stays (it has a ledger), the link is ended."""
        return self._claimed(woo_id, lambda: self._shop_deleted(int(woo_id)))

    def _shop_deleted(self, woo_id, *, link=None):
        links = self.links
        link = link or links.get(woo_id)
        if link is None:
            return self._count("shop", "unknown_deleted")
        link.state, link.synced_at = SHOP_DELETED, self.clock()
        links.save(link)
        log.info("customers: shop customer %s was deleted; account %s is kept and no longer synced",
                 woo_id, link.account_code)
        return self._count("shop", "deleted")

    # --- from Exchequer

    def sync_account(self, code):
        """Brings one Exchequer account and its shop customer in step (creating the customer when
        `customers.export_accounts` is `all`)."""
        connections = self._connections()
        links = connections.links
        link = links.by_account(code)
        if link is not None and link.state == LINKED:
            target = link.woo_id
        else:
            # A customer linked by key and never synced (an order's), else the one deleted in the shop.
            fresh = [woo_id for woo_id in shop_customers_of(connections.backend, code) if links.get(woo_id) is None]
            target = fresh[-1] if fresh else link.woo_id if link is not None else None
        if target is not None:
            return self._claimed(target, lambda: self._sync_linked_account(code, target))
        return self._export_account(code)

    def _account(self, code):
        try:
            account = self._connections().reader.account(code)
        except UnknownAccountError:
            return None
        return account if account.cust_supp == "C" else None

    def _sync_linked_account(self, code, woo_id):
        account = self._account(code)
        if account is None:
            return self._count("exchequer", "not_a_customer_account")
        link = self.links.get(woo_id) or Link(woo_id=woo_id, account_code=account.code)
        if link.account_code != account.code:
            log.warning("customers: shop customer %s is linked to account %s, not %s; %s is not synced",
                        woo_id, link.account_code, account.code, account.code)
            return self._count("exchequer", "linked_elsewhere")
        if link.state != LINKED:
            return self._count("exchequer", "shop_deleted")
        customer = self._shop_customer(woo_id)
        if customer is None:
            return self._shop_deleted(woo_id)
        if not self._is_customer(customer):
            return self._count("exchequer", "not_a_customer")
        return self._sync("exchequer", customer, account, link, created=False)

    def _export_account(self, code):
        """An account no shop customer is linked to: a new shop customer, or the one with its e-mail."""
        account = self._account(code)
        if account is None:
            return self._count("exchequer", "not_a_customer_account")
        if self.options.export_accounts != "all":
            return self._count("exchequer", "not_exported")
        view = account_view(account, wholesale_band=self.options.wholesale_band)
        if not view["email"]:
            return self._count("exchequer", "no_email")
        customer, created = self._customer_by_email(view["email"]), False
        if customer is None:
            customer, created = self._create_customer(account, view)
        if not self._is_customer(customer):
            log.warning("customers: account %s has the e-mail of shop user %s, whose role is %s; neither is changed",
                        account.code, customer["id"], customer.get("role"))
            return self._count("exchequer", "not_a_customer")
        return self._claimed(customer["id"], lambda: self._link_new(account.code, int(customer["id"])))

    def _link_new(self, code, woo_id):
        """Links the account to the shop customer found or made for it, then syncs them as they are now."""
        linked = self._connections().backend.link_account(external_key=customer_key(woo_id), code=code)
        if linked != code:
            log.warning("customers: account %s has the e-mail of shop customer %s, who is linked to account %s; "
                        "neither is changed", code, woo_id, linked)
            return self._count("exchequer", "email_taken")
        link = self.links.get(woo_id) or Link(woo_id=woo_id, account_code=code)
        if link.state != LINKED:
            return self._count("exchequer", "shop_deleted")
        customer = self._shop_customer(woo_id)
        if customer is None:
            return self._shop_deleted(woo_id, link=link)
        account = self._account(code)
        if account is None:
            return self._count("exchequer", "not_a_customer_account")
        created = self._start_from_made(link, customer)
        return self._sync("exchequer", customer, account, link, created=created)

    def _start_from_made(self, link, customer):
        """True when the export made this customer from the link's account and they were never synced:
        what was sent is then agreed, so only what creation could not carry (the role) goes now,
        whatever the first-link rules would say, whichever consumer links them first."""
        if link.snapshot is not None or _made_for(customer) != link.account_code:
            return False
        link.snapshot = woo_view(customer, self._fit, wholesale_role=self.options.wholesale_role)
        return True

    def _create_customer(self, account, view):
        """(customer, created): a new shop customer made from the account, or the one that registered
        with its e-mail meanwhile."""
        changes, _ = woo_changes(view, [field for field in FIELDS if field != "wholesale"])
        # Shops that do not generate passwords refuse a customer without one; the customer can reset it.
        changes["password"] = secrets.token_urlsafe(24)
        # The import consumer links this customer to this account whatever e-mails match (see customer_accounts).
        changes["meta_data"] = [{"key": EXSYNC_ACCOUNT_META, "value": account.code}]
        try:
            return self.client.create_customer(changes), True
        except WooApiError as error:
            if error.code == _EMAIL_TAKEN:
                customer = self._customer_by_email(view["email"])
                if customer is not None:
                    return customer, False
            raise self._refused(f"cannot create a shop customer for account {account.code}", error) from error

    def _customer_by_email(self, email):
        for customer in self.client.iter_customers(role="all", params={"email": email}):
            if str(customer.get("email") or "").lower() == email:
                return customer
        return None

    # --- the merge, and the writes it asks for

    def _sync(self, source, customer, account, link, *, created):
        """Merges one linked pair, writes what each side lacks, records conflicts and the snapshot."""
        woo = woo_view(customer, self._fit, wholesale_role=self.options.wholesale_role)
        exchequer = account_view(account, wholesale_band=self.options.wholesale_band)
        conflicts = self.options.conflicts
        result = merge(base=link.snapshot, woo=woo, exchequer=exchequer,
                       policy_of=conflicts.policy_of,
                       newest_side=lambda: self._newest_side(customer, account))
        connections = self._connections()
        if result.decisions:
            # Recorded before either side is written: a write that fails is retried, a value never lost.
            connections.links.record_decisions(link.woo_id, account.code, result.decisions, now=self.clock())
            for field, woo_value, exchequer_value, _, policy, winner in result.decisions:
                self.metrics.inc("customer_values_overridden", field=field, policy=policy)
                if winner != "manual":
                    log.info("customers: %s of shop customer %s: policy %s kept %s's value %r over %r",
                             field, link.woo_id, policy, winner,
                             woo_value if winner == "woo" else exchequer_value,
                             exchequer_value if winner == "woo" else woo_value)
        if result.to_exchequer or result.to_woo:
            self._renew(link.woo_id)
        if result.to_exchequer:
            changes = account_changes(result.agreed, result.to_exchequer, account=account,
                                      wholesale_band=self.options.wholesale_band)
            try:
                connections.backend.update_account(account.code, changes)
            except InvalidDocumentError as error:
                raise PermanentError(f"account {account.code}: {error}") from error
            for field in result.to_exchequer:
                self.metrics.inc("customer_fields_synced", side="exchequer", field=field)
        if result.to_woo:
            self._write_shop(customer, woo, result)
        now = self.clock()
        if result.conflicts or connections.links.conflicts(link.woo_id):
            connections.links.record_conflicts(link.woo_id, account.code, result.conflicts, now=now)
        for field, woo_value, exchequer_value, _ in result.conflicts:
            self.metrics.inc("customer_conflicts", field=field)
            log.warning("customers: %s of shop customer %s (%r) and account %s (%r) differ; left for a person: "
                        "exsync customers resolve %s %s --take woo|exchequer",
                        field, link.woo_id, woo_value, account.code, exchequer_value, link.woo_id, field)
        link.account_code, link.state, link.snapshot, link.synced_at = account.code, LINKED, result.agreed, now
        connections.links.save(link)
        if created:
            outcome = "created"
        elif result.to_woo or result.to_exchequer:
            outcome = "updated"
        else:
            outcome = "conflict" if result.conflicts else "unchanged"
        if outcome != "unchanged":
            log.info("customers: shop customer %s and account %s %s (from %s); to the shop: %s; to Exchequer: %s",
                     link.woo_id, account.code, outcome, source, ", ".join(result.to_woo) or "-",
                     ", ".join(result.to_exchequer) or "-")
        return self._count(source, outcome)

    def _write_shop(self, customer, woo, result):
        """Gives the shop the fields the merge sent its way; what it cannot take stays pending."""
        woo_id = int(customer["id"])
        if "email" in result.to_woo:
            if not result.agreed["email"]:
                # A shop customer must have an e-mail: an account that lost its own does not take the shop's away.
                self._pending(result, "email", woo)
            elif customer.get("role") not in EMAIL_EDITABLE_ROLES:
                self._email_refused(woo_id, woo, result, f"the shop lets REST change the e-mail of "
                                                        f"{', '.join(EMAIL_EDITABLE_ROLES)} only")
        changes, wholesale = woo_changes(result.agreed, result.to_woo)
        try:
            if changes:
                try:
                    self.client.update_customer(woo_id, changes)
                except WooBadRequest as error:
                    if "email" not in changes:
                        raise
                    # Most likely the e-mail (another user has it): that field waits for a person, the
                    # rest goes now; if the rest is refused too, that error stands.
                    self._email_refused(woo_id, woo, result, str(error))
                    changes, _ = woo_changes(result.agreed, result.to_woo)
                    if changes:
                        self.client.update_customer(woo_id, changes)
            if wholesale is not None:
                self._set_role(woo_id, wholesale, woo, result)
        except WooApiError as error:
            raise self._refused(f"shop customer {woo_id}", error) from error
        for field in result.to_woo:
            self.metrics.inc("customer_fields_synced", side="woo", field=field)

    def _email_refused(self, woo_id, woo, result, reason):
        log.warning("customers: the shop does not take e-mail %r for customer %s (%s); left for a person, and only "
                    "`exsync customers resolve %s email --take woo` can settle it", result.agreed["email"], woo_id,
                    reason, woo_id)
        result.conflicts.append(("email", woo["email"], result.agreed["email"], woo["email"]))
        self._pending(result, "email", woo)

    @staticmethod
    def _pending(result, field, woo):
        """Leaves `field` as the shop has it: agreed at that value, so Exchequer's stays a change to send."""
        result.to_woo.remove(field)
        result.agreed[field] = woo[field]

    def _set_role(self, woo_id, wholesale, woo, result):
        if not (self.wp_username and self.wp_application_password):
            self._pending(result, "wholesale", woo)
            log.warning("customers: shop customer %s should %s wholesale, but changing a role needs "
                        "EXSYNC_WP_USERNAME and EXSYNC_WP_APPLICATION_PASSWORD", woo_id,
                        "become" if wholesale else "no longer be")
            self.metrics.inc("customer_roles_skipped")
            return
        role = self.options.wholesale_role if wholesale else "customer"
        self.client.set_user_roles(woo_id, [role], username=self.wp_username,
                                   application_password=self.wp_application_password)

    def _refused(self, what, error):
        """A 400 will not pass by itself: park it with the shop's reason. Anything else (401/403 after
        a key or password change, 404 from a hidden route, 5xx) is retried until someone fixes it."""
        if isinstance(error, WooBadRequest):
            return PermanentError(f"{what}: the shop refused the change: {error}")
        return error

    def _newest_side(self, customer, account):
        """The side changed last: the shop's modification time against when capture first saw the
        account as it is (now, when capture has not seen it yet: its change is after the last cycle).

        The shop keeps whole seconds: an Exchequer change within the shop's second cannot be put
        before or after it, so that tie is `manual` (a person decides), never a silent win."""
        modified = parse_wc_gmt(customer.get("date_modified_gmt"))
        woo_at = modified.timestamp() if modified is not None else 0.0
        recorded = recorded_account(self._connections().state, self.company, account.code)
        seen = recorded is not None and recorded.fingerprint == account_fingerprint(account)
        exchequer_at = recorded.changed_at if seen else self.clock()
        if modified is not None and math.floor(exchequer_at) == math.floor(woo_at):
            return "manual"
        return "woo" if woo_at > exchequer_at else "exchequer"

    def _count(self, source, outcome):
        self.metrics.inc("customer_syncs", source=source, outcome=outcome)
        return outcome

    # --- a person's decisions

    def resolve(self, woo_id, field, take):
        """Settles a recorded conflict: `take` (`woo` or `exchequer`) wins and goes to the other side."""
        return self._claimed(woo_id, lambda: self._resolve(int(woo_id), field, take))

    def _resolve(self, woo_id, field, take):
        links = self.links
        link = links.get(woo_id)
        if link is None or not any(conflict.field == field for conflict in links.conflicts(woo_id)):
            raise ConsumerError(f"no conflict on {field} is recorded for shop customer {woo_id}")
        customer = self.client.get_customer(woo_id)
        account = self._connections().reader.account(link.account_code)
        woo = woo_view(customer, self._fit, wholesale_role=self.options.wholesale_role)
        exchequer = account_view(account, wholesale_band=self.options.wholesale_band)
        loser = exchequer if take == "woo" else woo
        links.record_decisions(woo_id, link.account_code, [
            (field, woo[field], exchequer[field], (link.snapshot or {}).get(field), "person", take)], now=self.clock())
        # Measured from the losing value, only the winner has changed: the ordinary merge carries it across.
        link.snapshot = dict(link.snapshot or {}, **{field: loser[field]})
        return self._sync("person", customer, account, link, created=False)
