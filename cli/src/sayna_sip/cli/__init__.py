"""The `sayna-sip` command: dispatches to each service's own entry point."""
