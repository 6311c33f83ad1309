"""Fixtures of the command-line tools' tests: a real forwarder (shared with tests/forwarder)."""

from tests.forwarder.conftest import start_forwarder

__all__ = ["start_forwarder"]
