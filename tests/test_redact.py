"""No secret reaches a log: the one redaction helper, with hostile values, and where it is used."""

import itertools
import logging

import pytest

from exsync.config import Settings
from exsync.exchequer import ConnectError, connect
from exsync.logs import configure_logging
from exsync.redact import MASK, RedactingFilter, redact, redact_odbc, redact_url, secrets_in, secrets_of
from exsync.woo import WooClient, WooTransportError
from tests.support.net import free_port
from tests.support.proxy import TcpProxy

HOSTILE_PASSWORD = "{pa}}ssLEAKME42}"  # ODBC brace escaping: the password is `pa}ssLEAKME42`


@pytest.mark.parametrize("dsn", [
    f"Driver={{PostgreSQL Unicode}};Server=db;Uid=sa;Pwd={HOSTILE_PASSWORD};Database=co",
    f"Driver={{PostgreSQL Unicode}};Server=db;Uid=sa;PWD = {HOSTILE_PASSWORD}",
    "Driver={ODBC Driver 18 for SQL Server};Server=db;UID=sa;PASSWORD={x;y}}LEAKME42;z};Encrypt=yes",
    "Driver=Zen;ServerName=db;Password=LEAK ME42 spaced;DBQ=CO",
    "DSN=company;pwd=LEAKME42",
])
def test_odbc_passwords_are_masked_whole_with_brace_escaping(dsn):
    masked = redact_odbc(dsn)
    assert "LEAK" not in masked and "ssLEAKME42" not in masked
    assert MASK in masked and "Driver" in masked or "DSN" in masked


def test_odbc_masking_keeps_the_other_attributes():
    masked = redact_odbc(f"Driver={{PostgreSQL Unicode}};Server=db;Uid=sa;Pwd={HOSTILE_PASSWORD};Database=co")
    assert masked == "Driver={PostgreSQL Unicode};Server=db;Uid=sa;Pwd=***;Database=co"


def test_urls_lose_their_passwords_and_secret_parameters():
    assert redact_url("amqp://exsync:s3cr%40tLEAK@rabbit:5672/prod") == "amqp://exsync:***@rabbit:5672/prod"
    text = ("HTTPConnectionPool(host='shop', port=80): Max retries exceeded with url: /wp-json/wc/v3/orders?"
            "page=2&oauth_consumer_key=ck_LEAK1&oauth_nonce=LEAK2&oauth_signature=LEAK3%3D&"
            "consumer_secret=cs_LEAK4&consumer_key=ck_LEAK5 (Caused by NewConnectionError)")
    masked = redact(text)
    assert "LEAK" not in masked
    assert "page=2" in masked and "Caused by NewConnectionError" in masked


@pytest.mark.parametrize("header", [
    "Authorization: Basic Y2tfTEVBSzpjc19MRUFL",
    'Authorization: OAuth oauth_consumer_key="ck_LEAK", oauth_signature="LEAK%3D"',
    "{'Authorization': 'Bearer LEAKLEAK', 'Accept': 'application/json'}",
    "proxy-authorization=Basic LEAK",
])
def test_authorization_headers_are_masked(header):
    masked = redact(header)
    assert "LEAK" not in masked and "Y2tf" not in masked and MASK in masked


def test_literal_secrets_are_masked_anywhere_and_short_ones_are_not():
    webhook_secret = "whsec-LEAK&amp;42"
    text = f"secret {webhook_secret} seen in {webhook_secret!r}; a b"
    assert "LEAK" not in redact(text, secrets=[webhook_secret, "a", ""])
    assert redact("a b", secrets=["a"]) == "a b"


def test_the_secrets_a_settings_holds_include_passwords_as_written_and_as_meant():
    settings = Settings(amqp_url="amqp://u:amqpLEAK@h/", webhook_secrets=("whLEAK1",),
                        exchequer_dsn=f"Driver=x;Pwd={HOSTILE_PASSWORD}", woo_consumer_key="ck_LEAK",
                        woo_consumer_secret="cs_LEAK")
    found = secrets_of(settings)
    for secret in ("amqpLEAK", "whLEAK1", HOSTILE_PASSWORD, "pa}ssLEAKME42", "ck_LEAK", "cs_LEAK"):
        assert secret in found
    assert secrets_in("no secrets here") == ()
    assert "LEAK" not in repr(settings)


def test_redaction_is_idempotent_and_leaves_the_reason_readable():
    once = redact("cannot connect to Driver=x;Pwd=LEAK: connection refused")
    assert once == redact(once) and "LEAK" not in once and once.endswith("connection refused")
    assert redact("cannot connect to Driver=x;Pwd=***: refused").endswith("Pwd=***: refused")


def test_the_logging_filter_masks_messages_arguments_and_tracebacks(caplog):
    logger = logging.getLogger("tests.redact")
    secret_filter = RedactingFilter(secrets=["cs_LEAK"])
    logger.addFilter(secret_filter)
    try:
        with caplog.at_level(logging.WARNING, logger="tests.redact"):
            logger.warning("connect to %s failed", "amqp://u:LEAKpw@h/")
            try:
                raise RuntimeError("signed with cs_LEAK")
            except RuntimeError:
                logger.exception("boom Pwd={x}}LEAK}")
    finally:
        logger.removeFilter(secret_filter)
    text = caplog.text + "".join(record.exc_text or "" for record in caplog.records)
    assert "LEAK" not in text and "RuntimeError" in text


def test_configure_logging_puts_the_filter_on_every_root_handler():
    configure_logging("WARNING", secrets=["x_LEAK"])
    handlers = logging.getLogger().handlers
    assert handlers and all(any(isinstance(f, RedactingFilter) for f in h.filters) for h in handlers)


def test_a_database_outage_logs_no_password(pg_odbc_dsn, caplog):
    """The database behind a proxy that is cut: the warnings name the DSN, never its password."""
    from exsync.consumers.orders import OrdersConsumer
    from exsync.schemas.config import validate_config

    proxy = TcpProxy(target_host="127.0.0.1", target_port=5432).start()
    dsn = pg_odbc_dsn.replace("Port=5432", f"Port={proxy.port}") + f"Pwd={HOSTILE_PASSWORD};"
    ticks = itertools.count(step=3600)
    consumer = OrdersConsumer(exchequer_dsn=dsn, state_dsn=dsn, config=validate_config({})[0],
                              publisher=_NoPublisher(), clock=lambda: next(ticks))
    try:
        proxy.cut()
        consumer._per_thread.discard()
        with caplog.at_level(logging.DEBUG):
            consumer.on_idle()
            with pytest.raises(ConnectError) as raised:
                connect(dsn)
    finally:
        consumer.close()
        proxy.cut()
    assert "retrying parked orders failed" in caplog.text and "Pwd=***" in caplog.text
    for leaked in ("LEAKME42", HOSTILE_PASSWORD):
        assert leaked not in caplog.text and leaked not in str(raised.value)


def test_a_shop_transport_error_logs_no_key_and_no_signature(caplog):
    """OAuth over plain HTTP puts the key and the signature in the query string requests quotes."""
    client = WooClient(url=f"http://127.0.0.1:{free_port()}", consumer_key="ck_KEYLEAK123",
                       consumer_secret="cs_SECRETLEAK456", signature_type="query", max_attempts=2,
                       backoff_initial_seconds=0.01)
    with caplog.at_level(logging.DEBUG, logger="exsync"), pytest.raises(WooTransportError) as raised:
        client.list_page("orders")
    logged = caplog.text + str(raised.value)
    assert "attempt 1 of 2" in caplog.text and "oauth_signature=***" in logged
    for leaked in ("ck_KEYLEAK123", "cs_SECRETLEAK456", "LEAK"):
        assert leaked not in logged


class _NoPublisher:
    def publish(self, **_):
        raise AssertionError("nothing is published during an outage")

    def close(self):
        pass
