"""Ports and waiting for servers to answer: exsync's own (exsync.netutil), which the demo and bench use too."""

from exsync.netutil import free_port, port_answers, wait_for_port

__all__ = ["free_port", "port_answers", "wait_for_port"]
