"""The one exception family users see: each message says what was wrong and what to do."""


class CityAgentError(Exception):
    """A failure a user can cause and fix; the CLI prints it without a traceback and exits 2."""


class HubError(CityAgentError):
    """Malformed, missing or unreachable hub data."""


class ConfigError(CityAgentError):
    """A config key, value or name that does not exist or does not fit."""
