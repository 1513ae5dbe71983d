"""Is an HTTP server up? Asked before handing its address to a client (MLflow's) that retries for minutes."""

import base64
import http.client
import urllib.error
import urllib.request
from urllib.parse import unquote, urlsplit


def is_server(uri: str) -> bool:
    """Whether ``uri`` names an http(s) tracking server rather than a store this process writes itself."""
    return uri.startswith(("http://", "https://"))


def unreachable(uri: str, timeout_s: float = 3.0) -> str | None:
    """Why the http(s) server at ``uri`` did not answer ``GET /health`` within ``timeout_s`` seconds; None when it
    answered, with any status (an auth proxy in front still means the server is up), or when ``uri`` is not http(s)
    (a sqlite file needs no server). Credentials in the URL (``https://user:pass@host``, which MLflow's client
    accepts) are sent as basic auth, not as part of the address."""
    if not is_server(uri):
        return None
    parts = urlsplit(uri)
    headers = {}
    if parts.username is not None:  # urllib would read "user:pass@host" as the host and fail on the port
        user, password = unquote(parts.username), unquote(parts.password or "")
        headers["Authorization"] = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        parts = parts._replace(netloc=parts.netloc.rpartition("@")[2])
    url = parts.geturl().rstrip("/") + "/health"
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout_s):
            return None
    except urllib.error.HTTPError:
        return None
    except (urllib.error.URLError, OSError, ValueError, http.client.HTTPException) as e:  # also a URL it can't parse
        return str(getattr(e, "reason", e))
