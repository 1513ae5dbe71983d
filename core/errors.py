"""The one exception family users see: each message says what was wrong and what to do."""


class CityAgentError(Exception):
    """A failure a user can cause and fix; the CLI prints it without a traceback and exits 2."""


class HubError(CityAgentError):
    """Malformed, missing or unreachable hub data."""


class ConfigError(CityAgentError):
    """A config key, value or name that does not exist or does not fit."""


class TrackingUnreachable(CityAgentError):
    """An http(s) MLflow tracking server did not answer its ``/health`` check when a call needed it."""

    def __init__(self, message: str, uri: str = "", why: str = "") -> None:
        super().__init__(message)
        self.uri, self.why = uri, why
