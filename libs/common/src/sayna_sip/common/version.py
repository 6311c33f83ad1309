"""The product version, as sent in `User-Agent: sayna-sip/<version>`."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("sayna-sip-common")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

USER_AGENT = f"sayna-sip/{__version__}"
