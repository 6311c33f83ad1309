"""The configuration error tree: every invalid setting fails fast with one of these."""


class ConfigError(ValueError):
    """Invalid configuration. The message names the field and the offending value."""
