"""Is an HTTP server up? Asked before handing its address to a client (MLflow's) that retries for minutes."""

import urllib.error
import urllib.request


def unreachable(uri: str, timeout_s: float = 3.0) -> str | None:
    """Why the http(s) server at ``uri`` did not answer ``GET /health`` within ``timeout_s`` seconds; None when it
    answered, with any status (an auth proxy in front still means the server is up), or when ``uri`` is not http(s)
    (a sqlite file needs no server)."""
    if not uri.startswith(("http://", "https://")):
        return None
    try:
        with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout_s):
            return None
    except urllib.error.HTTPError:
        return None
    except (urllib.error.URLError, OSError) as e:
        return str(getattr(e, "reason", e))
