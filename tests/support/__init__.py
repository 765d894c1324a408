"""Test helpers: real services made private to a test (vhosts, databases), ports, a TCP proxy, waiting."""
