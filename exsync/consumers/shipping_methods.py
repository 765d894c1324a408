"""Imports the shop's shipping zones and method instances into the table the order mapping reads."""

from exsync.state.orders import ShippingMethod
from exsync.woo import WooNotFound

__all__ = ["import_shipping_methods"]

# WooCommerce's catch-all zone ("Locations not covered by your other zones") is zone 0 and is not
# listed by GET /shipping/zones, so it is asked for by id; a shop without it answers 404.
REST_OF_WORLD_ZONE_ID = 0


def import_shipping_methods(*, client, store):
    """Reads every zone's method instances and replaces the stored ones; returns them."""
    zones = {int(zone["id"]): zone.get("name") or "" for zone in client.list_shipping_zones()}
    zones.setdefault(REST_OF_WORLD_ZONE_ID, "Rest of the world")
    methods = []
    for zone_id, zone_name in sorted(zones.items()):
        try:
            instances = client.list_shipping_zone_methods(zone_id)
        except WooNotFound:
            if zone_id == REST_OF_WORLD_ZONE_ID:
                continue
            raise
        for instance in instances:
            methods.append(ShippingMethod(instance_id=str(instance.get("instance_id") or instance.get("id")),
                                          zone_id=zone_id, zone_name=zone_name,
                                          method_id=str(instance.get("method_id") or ""),
                                          title=str(instance.get("title") or instance.get("method_title") or ""),
                                          enabled=bool(instance.get("enabled"))))
    store.replace_all(methods)
    return methods
