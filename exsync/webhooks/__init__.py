"""The WooCommerce webhook receiver (Flask under gunicorn)."""

from exsync.webhooks.app import create_app
from exsync.webhooks.receiver import Outcome, Receiver
from exsync.webhooks.signature import compute_signature, verify_signature

__all__ = ["Outcome", "Receiver", "compute_signature", "create_app", "verify_signature"]
