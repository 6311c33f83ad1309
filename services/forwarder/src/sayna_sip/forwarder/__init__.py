"""sayna-sip forwarder service."""
