"""Conformance suite: moddeps against the real kmod 30 on Debian kernel packages.

Run with ``pytest -m conformance tests/conformance`` (the plain ``pytest``
run deselects these tests).  See ``debian.py`` for the environment variables.
"""
