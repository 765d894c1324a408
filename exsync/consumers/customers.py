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
import logging
import math
import time
from typing import Any

from exsync.bus import PermanentError
from exsync.consumers.connections import ExchequerConnections, fresh_after_failure
from exsync.consumers.customer_accounts import account_for_shop_customer, customer_key, shop_customers_of
from exsync.consumers.customer_mapping import (
    AccountFitter,
    account_changes,
    account_view,
    billing_details,
    merge,
    woo_view,
)
from exsync.consumers.customer_shop import ShopCustomers, made_for
from exsync.consumers.errors import ConsumerError, CustomerBusyError
from exsync.consumers.gauges import track_state_gauges
from exsync.exchequer import (
    InvalidDocumentError,
    UnknownAccountError,
    mapping_for,
    options_for,
)
from exsync.exchequer.account_capture import account_fingerprint, ensure_account_state, recorded_account
from exsync.metrics import Metrics
from exsync.state.lease import holder_id
from exsync.state.links import LINKED, SHOP_DELETED, Link, LinkStore
from exsync.threads import PerThread
from exsync.woo import WooClient
from exsync.woo.dates import parse_wc_gmt

__all__ = ["DEFAULT_CLAIM_SECONDS", "CustomersConsumer", "build", "build_export"]

log = logging.getLogger(__name__)

# Longer than the slowest shop call with its retries (5 attempts of 30 s); renewed before each write.
DEFAULT_CLAIM_SECONDS = 300.0

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
        self.options = config["customers"]
        self.customer_roles = tuple(config["shop"]["reconcile"]["customer_roles"])
        self.names_mapping = mapping_for(config)
        self.company = self.names_mapping.company
        self.client = client
        self.metrics = metrics or Metrics()
        self.shop = ShopCustomers(client=client, wholesale_role=self.options["wholesale_role"], metrics=self.metrics,
                                  wp_username=wp_username, wp_application_password=wp_application_password)
        self.clock = clock
        self.claim_seconds = claim_seconds
        self.holder = holder or holder_id()
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
    def links(self) -> LinkStore:
        return self._connections().links

    def close(self) -> None:
        self._per_thread.close()
        self.client.close()

    # --- the consumer interface

    def handle(self, message: Any) -> None:
        with fresh_after_failure(self._per_thread):
            self.handle_event(message.event)

    def handle_event(self, event: dict) -> dict:
        """Syncs the customers an envelope names; returns {id or code: outcome}."""
        kind = str(event.get("type") or "")
        if not self.options["enabled"]:
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

    def sync_customer(self, woo_id: int) -> str:
        """Brings one shop customer and its account in step (linking or creating the account)."""
        return self._claimed(woo_id, lambda: self._sync_customer(int(woo_id)))

    def _sync_customer(self, woo_id):
        customer = self.shop.get(woo_id)
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
            if customer.get("role") == self.options["wholesale_role"]:
                details = dataclasses.replace(details, price_band=self.options["wholesale_band"])
            try:
                code, created = account_for_shop_customer(
                    backend=connections.backend, reader=connections.reader, woo_id=woo_id, details=details,
                    match_by_email=self.options["match_by_email"], made_for=made_for(customer),
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

    def _is_customer(self, customer):
        return not self.customer_roles or customer.get("role") in self.customer_roles

    def shop_deleted(self, woo_id: int) -> str:
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

    def sync_account(self, code: str) -> str:
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
        customer = self.shop.get(woo_id)
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
        if self.options["export_accounts"] != "all":
            return self._count("exchequer", "not_exported")
        view = account_view(account, wholesale_band=self.options["wholesale_band"])
        if not view["email"]:
            return self._count("exchequer", "no_email")
        customer, created = self.shop.by_email(view["email"]), False
        if customer is None:
            customer, created = self.shop.create(account.code, view)
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
        customer = self.shop.get(woo_id)
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
        if link.snapshot is not None or made_for(customer) != link.account_code:
            return False
        link.snapshot = woo_view(customer, self._fit, wholesale_role=self.options["wholesale_role"])
        return True

    # --- the merge, and the writes it asks for

    def _sync(self, source, customer, account, link, *, created):
        """Merges one linked pair, writes what each side lacks, records conflicts and the snapshot."""
        woo = woo_view(customer, self._fit, wholesale_role=self.options["wholesale_role"])
        exchequer = account_view(account, wholesale_band=self.options["wholesale_band"])
        conflicts = self.options["conflicts"]
        result = merge(base=link.snapshot, woo=woo, exchequer=exchequer,
                       policy_of=lambda field: conflicts["fields"].get(field, conflicts["default"]),
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
                                      wholesale_band=self.options["wholesale_band"])
            try:
                connections.backend.update_account(account.code, changes)
            except InvalidDocumentError as error:
                raise PermanentError(f"account {account.code}: {error}") from error
            for field in result.to_exchequer:
                self.metrics.inc("customer_fields_synced", side="exchequer", field=field)
        if result.to_woo:
            self.shop.write(customer, woo, result)
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

    def resolve(self, woo_id: int, field: str, take: str) -> str:
        """Settles a recorded conflict: `take` (`woo` or `exchequer`) wins and goes to the other side."""
        return self._claimed(woo_id, lambda: self._resolve(int(woo_id), field, take))

    def _resolve(self, woo_id, field, take):
        links = self.links
        link = links.get(woo_id)
        if link is None or not any(conflict.field == field for conflict in links.conflicts(woo_id)):
            raise ConsumerError(f"no conflict on {field} is recorded for shop customer {woo_id}")
        customer = self.client.get_customer(woo_id)
        account = self._connections().reader.account(link.account_code)
        woo = woo_view(customer, self._fit, wholesale_role=self.options["wholesale_role"])
        exchequer = account_view(account, wholesale_band=self.options["wholesale_band"])
        loser = exchequer if take == "woo" else woo
        links.record_decisions(woo_id, link.account_code, [
            (field, woo[field], exchequer[field], (link.snapshot or {}).get(field), "person", take)], now=self.clock())
        # Measured from the losing value, only the winner has changed: the ordinary merge carries it across.
        link.snapshot = dict(link.snapshot or {}, **{field: loser[field]})
        return self._sync("person", customer, account, link, created=False)


def build(settings, *, metrics):
    """The consumer `exsync consume customers` runs: it alone exports the conflicts waiting."""
    track_state_gauges(metrics, dsn=settings.state_dsn, mapping=mapping_for(settings.config), gauges={
        "customer_conflicts_waiting": lambda database: LinkStore(database=database).waiting()})
    return build_export(settings, metrics=metrics)


def build_export(settings, *, metrics):
    """The consumer `exsync consume customers-export` runs (and one-off syncs from the command line)."""
    return CustomersConsumer(exchequer_dsn=settings.exchequer_dsn, state_dsn=settings.state_dsn,
                             config=settings.config, client=WooClient.from_settings(settings, metrics=metrics),
                             wp_username=settings.wp_username,
                             wp_application_password=settings.wp_application_password, metrics=metrics)
