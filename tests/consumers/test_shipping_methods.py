"""Shipping methods imported from the sandbox shop, and the carriage line they describe."""

from exsync.consumers.shipping_methods import import_shipping_methods
from exsync.exchequer import ExchequerReader, connect
from exsync.state.orders import ShippingMethodStore, ensure_order_tables
from tests.consumers.conftest import event, order_body


def test_zones_and_instances_are_imported_and_replaced(sandbox_shop, tmp_path):
    shop, client, _ = sandbox_shop
    with connect(f"sqlite:///{tmp_path}/state.db") as database:
        ensure_order_tables(database)
        store = ShippingMethodStore(database=database)
        import_shipping_methods(client=client, store=store)
        assert [(m.zone_name, m.method_id, m.title, m.enabled) for m in store.all()] == [
            ("UK", "flat_rate", "Standard delivery", True), ("UK", "free_shipping", "Free delivery", True),
            ("Europe", "flat_rate", "EU delivery", True)]
        shop.add_shipping_zone(name="Collect", methods=[{"method_id": "local_pickup", "title": "Collect in store",
                                                         "enabled": False}])
        import_shipping_methods(client=client, store=store)
        assert len(store.all()) == 4
        assert store.all()[-1].enabled is False


def test_carriage_line_is_described_by_the_mapping_then_the_imported_title(sandbox_shop, sqlite_company,
                                                                          make_consumer):
    dsn, codes = sqlite_company
    _, client, _ = sandbox_shop
    consumer, publisher = make_consumer(dsn, shipping={"methods": {"free_shipping": {"description": "Free carriage"}}})
    import_shipping_methods(client=client, store=consumer._connections().shipping)
    europe = next(m for m in consumer._connections().shipping.all() if m.zone_name == "Europe")
    free = next(m for m in consumer._connections().shipping.all() if m.method_id == "free_shipping")
    by_title = order_body(601, lines=[(codes[0], 1, "5.00", "5.00", "1.00")],
                          shipping=("flat_rate", europe.instance_id, "", "12.50", "2.50"))
    by_method = order_body(602, lines=[(codes[0], 1, "5.00", "5.00", "1.00")],
                           shipping=("free_shipping", free.instance_id, "Free", "0.01", "0.00"))
    consumer.handle_event(event(by_title))
    consumer.handle_event(event(by_method))
    reader = ExchequerReader(database=connect(dsn))
    descriptions = [[line.description for line in reader.document(sent["data"]["references"][0]).lines
                     if not line.stock_code] for _, _, sent in publisher.published]
    assert descriptions == [["Carriage: EU delivery"], ["Free carriage"]]
