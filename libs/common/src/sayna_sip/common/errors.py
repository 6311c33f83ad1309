"""The configuration error tree: every invalid setting fails fast with one of these."""


class ConfigError(ValueError):
    """Invalid configuration. The message names the field and the offending value; `code`
    is the API's error code when the same rule refuses an API body (`validate.hook_entry`)."""

    def __init__(self, message: str, code: str = "invalid_body") -> None:
        super().__init__(message)
        self.code = code
