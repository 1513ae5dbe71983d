"""An MQTT subscription with paho-mqtt 2: parse the broker URL, connect, subscribe, wait until the broker agrees."""

import ssl
import threading
from collections.abc import Callable, Sequence
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from cityagent.errors import CityAgentError, ConfigError

DEFAULT_PORTS = {"mqtt": 1883, "tcp": 1883, "mqtts": 8883, "ssl": 8883}
MAX_TOPIC_BYTES = 65535  # MQTT strings carry a 2-byte length
TOPIC_EXAMPLE = "use one such as 'city/+/readings' or 'city/#'"
# A durable session acknowledges a message once its readings are written. paho holds back only a QoS 1 PUBACK: for
# QoS 2 it answers PUBREC on arrival and forgets the message if killed, so the broker never sends it again.
DURABLE_QOS_PROBLEM = (
    "a durable session (a client id) cannot use qos 2: paho answers PUBREC when a message arrives, before its "
    "readings are written, so one held in memory at a crash is not sent again; set mqtt.qos to 1 (a message sent "
    "twice is set aside as a duplicate)"
)


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


def topic_filter_rule(topic: str) -> str | None:
    """The MQTT 3.1.1/5 rule a subscription filter breaks, or None when it is valid."""
    if not topic:
        return "it is empty"
    if "\x00" in topic:
        return "it contains a NUL character (U+0000)"
    try:
        size = len(topic.encode("utf-8"))
    except UnicodeEncodeError:
        return "it is not valid UTF-8 (it holds a lone surrogate)"
    if size > MAX_TOPIC_BYTES:
        return f"it is {size} bytes of UTF-8, more than MQTT's {MAX_TOPIC_BYTES}"
    odd = next((ch for ch in topic if _control_or_nonchar(ch)), None)
    if odd is not None:  # the spec says SHOULD NOT; Mosquitto drops the connection over it
        return f"it contains U+{ord(odd):04X}, a control character or Unicode non-character"
    levels = topic.split("/")
    for i, level in enumerate(levels):
        if "#" in level and (level != "#" or i != len(levels) - 1):
            return "'#' must be alone in its level and be the last level"
        if "+" in level and level != "+":
            return "'+' must be alone in its level"
    return None


def _control_or_nonchar(ch: str) -> bool:
    code = ord(ch)
    return code <= 0x1F or 0x7F <= code <= 0x9F or 0xFDD0 <= code <= 0xFDEF or code & 0xFFFE == 0xFFFE


def topic_filters_problem(topics: Sequence[str]) -> str | None:
    """Why ``topics`` cannot be subscribed to (the first bad filter, the rule it breaks, a valid example), or None."""
    if not topics:
        return f"no topic filter given; {TOPIC_EXAMPLE}"
    for topic in topics:
        rule = topic_filter_rule(topic)
        if rule:
            shown = topic if len(topic) <= 80 else topic[:60] + "…"
            return f"{shown!r} is not a valid MQTT topic filter: {rule}; {TOPIC_EXAMPLE}"
    return None


def check_topic_filters(topics: Sequence[str], field: str = "topics") -> None:
    """Refuse bad filters before connecting: paho would raise inside its network thread, the broker drop us."""
    problem = topic_filters_problem(topics)
    if problem:
        raise ConfigError(f"{field}: {problem}")


def _refusals(topics: Sequence[str], reasons: list[ReasonCode], who: str) -> str | None:
    """The SUBACK's refused filters (MQTT 3.1.1 0x80, MQTT 5 reason codes ≥ 0x80) as one message, or None."""
    bad = [f"{t!r} (0x{r.value:02X}: {r})" for t, r in zip(topics, reasons, strict=False) if r.is_failure]
    if not bad:
        return None
    return (
        f"the broker refused the subscription to {', '.join(bad)}; its ACL must let {who} subscribe there: "
        "grant that, or drop the topic filter"
    )


def connect(
    url: str,
    topics: list[str],
    on_message: Callable[[mqtt.MQTTMessage], None],
    *,
    client_id: str | None = None,
    qos: int = 1,
    keepalive: int = 60,
    timeout: float = 10.0,
    on_refused: Callable[[str], None] | None = None,
    on_status: Callable[[str], None] | None = None,
    manual_ack: bool = False,
) -> mqtt.Client:
    """A connected client whose network loop runs in a background thread, subscribed to ``topics``.

    Returns only once the broker's SUBACK granted every filter; a refused filter raises CityAgentError.

    Args:
        url: broker URL (see ``parse_url``).
        topics: topic filters, wildcards allowed; checked against the MQTT rules before connecting.
        on_message: called from the network thread for every message; keep it quick (e.g. put on a queue).
        client_id: given, the session is durable (clean_session=False): the broker queues messages while away.
        qos: subscription QoS.
        keepalive: seconds.
        timeout: seconds to wait for the broker's CONNACK and SUBACK.
        on_refused: called from the network thread with the reason when the broker refuses the subscription
            after a reconnect (e.g. its ACL changed meanwhile); without it that would go unnoticed.
        on_status: called from the network thread when the connection is lost after the subscription was granted
            (paho reconnects by itself) and when it is back, so a long-running listener's log shows an outage.
        manual_ack: acknowledge a QoS 1 message only on ``client.ack(msg.mid, msg.qos)``, once the caller has
            stored it; until then a durable session's broker sends it again should this client die (a broker
            sends only so many unacknowledged messages, 20 by default for Mosquitto, before it waits).
    """
    check_topic_filters(topics)
    host, port, tls, user, password = parse_url(url)
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=client_id or "",
        clean_session=client_id is None,
        protocol=mqtt.MQTTv311,
        manual_ack=manual_ack,
    )
    if user:
        client.username_pw_set(user, password)
    if tls:
        client.tls_set(cert_reqs=ssl.CERT_REQUIRED)
    ready, problem, lost = threading.Event(), [], threading.Event()
    who = f"user {user!r}" if user else "anonymous clients"
    status = on_status or (lambda _line: None)

    def fail(why: str) -> None:
        if not ready.is_set():
            problem.append(why)
            ready.set()
        elif on_refused is not None:
            on_refused(why)

    def on_connect(c: mqtt.Client, _userdata, _flags, reason: ReasonCode, _props) -> None:
        if reason.is_failure:
            fail(f"the broker refused the connection: {reason}")
            return
        if lost.is_set():
            lost.clear()
            status(f"reconnected to the MQTT broker {host}:{port}; resubscribing")
        try:  # also after a reconnect, so the subscription survives it
            c.subscribe([(t, qos) for t in topics])
        except ValueError as e:  # raised here it would only be a traceback of paho's thread
            fail(f"cannot subscribe: {e}")

    def on_subscribe(_c, _userdata, _mid, reasons: list[ReasonCode], _props) -> None:
        refused = _refusals(topics, reasons, who)
        if refused:
            fail(refused)
        else:
            ready.set()

    def on_disconnect(_c, _userdata, _flags, reason: ReasonCode, _props) -> None:
        if not ready.is_set():  # e.g. a broker that drops a filter it finds malformed: say so, do not time out
            fail(f"the broker closed the connection before granting the subscription: {reason}")
        elif reason.is_failure and not lost.is_set():  # not our own disconnect at the end
            lost.set()
            status(f"lost the MQTT broker {host}:{port} ({reason}); reconnecting, readings wait at the broker")

    client.on_connect, client.on_subscribe, client.on_disconnect = on_connect, on_subscribe, on_disconnect
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
        why = problem[0] if problem else f"no answer within {timeout:g} s; check the URL and credentials"
        raise CityAgentError(f"MQTT broker {host}:{port}: {why}")
    return client
