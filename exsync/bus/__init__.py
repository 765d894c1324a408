"""RabbitMQ: topology, the confirming publisher, the consume loop."""

__all__ = []
