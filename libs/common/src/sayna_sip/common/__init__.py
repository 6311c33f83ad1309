"""Shared contracts of sayna-sip: configuration, NATS topology, hooks, logging, metrics.

Only code that two or more services need lives here; nothing here imports a service.
"""

from sayna_sip.common.version import __version__

__all__ = ["__version__"]
