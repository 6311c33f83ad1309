"""sayna-sip router service."""
