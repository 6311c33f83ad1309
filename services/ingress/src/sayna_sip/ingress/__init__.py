"""sayna-sip ingress service."""
