"""sayna-sip provisioner service."""
