"""An MQTT subscription with paho-mqtt 2: parse the broker URL, connect, subscribe, wait until the broker agrees."""

import ssl
import threading
from collections.abc import Callable
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from cityagent.errors import CityAgentError, ConfigError

DEFAULT_PORTS = {"mqtt": 1883, "tcp": 1883, "mqtts": 8883, "ssl": 8883}


def parse_url(url: str) -> tuple[str, int, bool, str | None, str | None]:
    """``mqtt://user:pass@host:1883`` → (host, port, tls, username, password)."""
    parts = urlsplit(url)
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
        raise ConfigError(f"MQTT URL {url!r} must look like mqtt://host:1883 or mqtts://host:8883")
    try:
        port = parts.port or DEFAULT_PORTS[parts.scheme]
    except ValueError as e:
        raise ConfigError(f"MQTT URL {url!r} has a bad port: {e}") from e
    user = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password else None
    return parts.hostname, port, parts.scheme in ("mqtts", "ssl"), user, password


def connect(
    url: str,
    topics: list[str],
    on_message: Callable[[mqtt.MQTTMessage], None],
    *,
    client_id: str | None = None,
    qos: int = 1,
    keepalive: int = 60,
    timeout: float = 10.0,
) -> mqtt.Client:
    """A connected client whose network loop runs in a background thread, subscribed to ``topics``.

    Args:
        url: broker URL (see ``parse_url``).
        topics: topic filters, wildcards allowed.
        on_message: called from the network thread for every message; keep it quick (e.g. put on a queue).
        client_id: given, the session is durable (clean_session=False): the broker queues messages while away.
        qos: subscription QoS.
        keepalive: seconds.
        timeout: seconds to wait for the broker's CONNACK and SUBACK.
    """
    host, port, tls, user, password = parse_url(url)
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=client_id or "",
        clean_session=client_id is None,
        protocol=mqtt.MQTTv311,
    )
    if user:
        client.username_pw_set(user, password)
    if tls:
        client.tls_set(cert_reqs=ssl.CERT_REQUIRED)
    ready, problem = threading.Event(), []

    def on_connect(c: mqtt.Client, _userdata, _flags, reason, _props) -> None:
        if reason.is_failure:
            problem.append(f"the broker refused the connection: {reason}")
            ready.set()
            return
        c.subscribe([(t, qos) for t in topics])  # also after a reconnect, so the subscription survives it

    def on_subscribe(_c, _userdata, _mid, reasons, _props) -> None:
        bad = [f"{t}: {r}" for t, r in zip(topics, reasons, strict=False) if r.is_failure]
        if bad:
            problem.append(f"the broker refused the subscription ({'; '.join(bad)})")
        ready.set()

    client.on_connect, client.on_subscribe = on_connect, on_subscribe
    client.on_message = lambda _c, _userdata, msg: on_message(msg)
    try:
        client.connect(host, port, keepalive)
    except (OSError, ValueError) as e:
        raise CityAgentError(
            f"cannot reach the MQTT broker at {host}:{port}: {e}; start it or pass another --mqtt"
        ) from e
    client.loop_start()
    if not ready.wait(timeout) or problem:
        client.disconnect()
        client.loop_stop()
        why = problem[0] if problem else f"no answer within {timeout:g} s"
        raise CityAgentError(f"MQTT broker {host}:{port}: {why}; check the URL, credentials and topic filters")
    return client
