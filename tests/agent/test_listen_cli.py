"""`cityagent hub listen` as operators meet it: bad topic filters refused before connecting, a bad flag blamed on
the flag, "listening" only once the broker granted the subscription, a refused subscription (at start or after a
reconnect) a clear error, and Ctrl-C / SIGTERM finishing the batch with nothing received lost."""

import base64
import getpass
import glob
import hashlib
import json
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
import typer
from paho.mqtt.enums import CallbackAPIVersion
from typer.testing import CliRunner

from cityagent.agent.agent_config import load_agent_config
from cityagent.agent.cli_agent_ops import listen as listen_command
from cityagent.agent.listen import listen
from cityagent.agent.mqtt import check_topic_filters, topic_filter_rule
from cityagent.errors import CityAgentError, ConfigError
from cityagent.hub import read_hub
from cityagent.hub.validate import validate_hub
from tests.agent.test_listen import hub_dir, needs_broker, publish, session, traffic  # noqa: F401
from tests.mlflow_servers import free_port

CITYAGENT = Path(sys.executable).parent / "cityagent"
BAD_FILTERS = [
    ("city/#/readings", "'#' must be alone in its level and be the last level"),
    ("city/re#", "'#' must be alone in its level and be the last level"),
    ("city/+x/readings", "'+' must be alone in its level"),
    ("", "it is empty"),
    ("city/\x00/readings", "NUL character"),
    ("city/\x01/readings", "U+0001"),
    ("a" * 65536, "65536 bytes of UTF-8, more than MQTT's 65535"),
]
GOOD_FILTERS = ["city/+/readings", "city/#", "#", "+", "+/+/#", "/", "city//readings", "ciudad/tráfico/#"]


def _app() -> typer.Typer:
    app = typer.Typer()
    app.command()(listen_command)
    app.command("other")(lambda: None)  # two commands, so typer keeps the sub-command name
    return app


# --- topic filters -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("topic", "rule"), BAD_FILTERS)
def test_a_bad_topic_filter_is_refused_before_connecting(hub_dir, topic, rule):  # noqa: F811
    # nothing listens on the port: only a check made before connecting can give this error
    with pytest.raises(ConfigError) as e:
        listen(hub_dir, url=f"mqtt://127.0.0.1:{free_port()}", topics=["city/#", topic], duration=1)
    message = str(e.value)
    assert message.startswith("topics: ") and "is not a valid MQTT topic filter" in message
    assert rule in message and "use one such as 'city/+/readings'" in message
    assert "\n" not in message and len(message) < 300  # one line, a 64 KiB filter shortened


@pytest.mark.parametrize("topic", GOOD_FILTERS)
def test_valid_topic_filters_pass(topic):
    assert topic_filter_rule(topic) is None
    check_topic_filters([topic])


@needs_broker
def test_the_broker_grants_the_filters_we_let_through(hub_dir):  # noqa: F811
    stats = listen(hub_dir, topics=GOOD_FILTERS, duration=0.1)  # raises if the broker refused or dropped one
    assert stats.messages >= 0


@pytest.mark.parametrize(
    ("yaml_topics", "rule"),
    [
        ('["city/#/readings"]', "'city/#/readings' is not a valid MQTT topic filter: '#' must be alone"),
        ('["city/+x/readings"]', "'+' must be alone in its level"),
        ('["city/\\0/readings"]', "NUL character"),
        ('[""]', "it is empty"),
        ("[]", "no topic filter given"),
    ],
)
def test_a_bad_topic_filter_in_the_agent_yaml_is_refused_at_load(tmp_path, yaml_topics, rule):
    path = tmp_path / "agent.yaml"
    path.write_text(f"mqtt:\n  topics: {yaml_topics}\n")
    with pytest.raises(ConfigError) as e:
        load_agent_config(path)
    assert str(e.value).startswith(f"agent config {path}: mqtt.topics: ") and rule in str(e.value)


@needs_broker
def test_the_cli_refuses_a_bad_topic_in_one_line_without_a_traceback_or_a_wait(tmp_path, hub_dir):  # noqa: F811
    env = {**os.environ, "CITYAGENT_HOME": str(tmp_path / "home"), "COLUMNS": "400"}
    started = time.monotonic()
    done = subprocess.run(
        [str(CITYAGENT), "hub", "listen", "--hub", str(hub_dir), "--topic", "city/#/readings", "--duration", "30"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert time.monotonic() - started < 8  # the old code waited 10 s for a SUBACK that never came
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert "listening on" not in done.stdout
    assert done.stderr.strip().splitlines() == [
        "error: --topic: 'city/#/readings' is not a valid MQTT topic filter: '#' must be alone in its level and be "
        "the last level; use one such as 'city/+/readings' or 'city/#'; fix that option"
    ]


# --- flags and the moment "listening" is printed -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--batch", "0"], "--batch 0: Input should be greater than or equal to 1"),
        (["--flush-seconds", "0"], "--flush-seconds 0.0: Input should be greater than 0"),
        (["--topic", "city/+x/readings"], "--topic: 'city/+x/readings' is not a valid MQTT topic filter"),
    ],
)
def test_a_bad_flag_is_blamed_on_the_flag_not_the_config_file(hub_dir, args, message):  # noqa: F811
    result = CliRunner().invoke(_app(), ["listen", "--hub", str(hub_dir), *args])
    assert isinstance(result.exception, ConfigError), result.output
    assert str(result.exception).startswith(message) and "agent config" not in str(result.exception)


def test_a_bad_value_in_the_file_is_still_blamed_on_the_file(tmp_path, hub_dir):  # noqa: F811
    path = tmp_path / "agent.yaml"
    path.write_text("mqtt:\n  batch: 0\n")
    result = CliRunner().invoke(_app(), ["listen", "--hub", str(hub_dir), "--config", str(path), "--batch", "5"])
    assert str(result.exception).startswith(f"agent config {path}: mqtt.batch: ")


def test_a_durable_session_with_qos_2_is_refused_before_anything_is_taken(tmp_path, hub_dir):  # noqa: F811
    """paho answers a QoS 2 message's PUBREC on arrival, so a durable listener killed before writing it would lose it
    for good: refused in the file, on the flag, and in Python, before subscribing (no broker is contacted)."""
    path = tmp_path / "agent.yaml"
    path.write_text("mqtt:\n  qos: 2\n  client_id: city-listener\n")
    with pytest.raises(ConfigError) as e:
        load_agent_config(path)
    assert str(e.value).startswith(f"agent config {path}: mqtt.client_id: a durable session (a client id) cannot")
    assert "set mqtt.qos to 1" in str(e.value)
    path.write_text("mqtt:\n  qos: 2\n")
    assert load_agent_config(path).mqtt.qos == 2  # without a client id nothing is acknowledged by hand: allowed
    result = CliRunner().invoke(_app(), ["listen", "--hub", str(hub_dir), "--config", str(path), "--client-id", "c"])
    assert isinstance(result.exception, ConfigError), result.output
    assert str(result.exception).startswith("--client-id 'c': a durable session (a client id) cannot use qos 2")
    url = f"mqtt://127.0.0.1:{free_port()}"  # nothing listens there: the refusal must come first
    with pytest.raises(CityAgentError, match="client_id 'c' with qos 2: a durable session"):
        listen(hub_dir, url, client_id="c", qos=2, duration=1)


def test_nothing_says_listening_when_the_broker_cannot_be_reached(hub_dir):  # noqa: F811
    url = f"mqtt://127.0.0.1:{free_port()}"
    result = CliRunner().invoke(_app(), ["listen", "--hub", str(hub_dir), "--mqtt", url, "--duration", "1"])
    assert isinstance(result.exception, CityAgentError) and "cannot reach the MQTT broker" in str(result.exception)
    assert "listening on" not in result.output


# --- a broker whose ACL refuses subscriptions (a private Mosquitto with its dynamic-security plugin) ---------------

PLUGIN = next(
    iter(
        sorted(glob.glob("/usr/lib/*/mosquitto_dynamic_security.so"))
        + sorted(glob.glob("/usr/lib/mosquitto_dynamic_security.so"))
        + sorted(glob.glob("/usr/local/lib/mosquitto_dynamic_security.so"))
    ),
    None,
)
needs_acl_broker = pytest.mark.skipif(
    shutil.which("mosquitto") is None or PLUGIN is None,
    reason="no mosquitto binary with its dynamic-security plugin to run a broker with an ACL",
)


def _dynsec_client(username: str, password: str, role: str) -> dict:
    salt = os.urandom(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, 101)
    return {
        "username": username,
        "password": base64.b64encode(digest).decode(),
        "salt": base64.b64encode(salt).decode(),
        "iterations": 101,
        "roles": [{"rolename": role}],
    }


@pytest.fixture
def acl_broker(tmp_path) -> Iterator[int]:
    """A Mosquitto on a free 127.0.0.1 port: user 'reader' may subscribe to allowed/# only; 'admin' may publish
    there and edit the ACL. Yields the port."""
    control = "$CONTROL/dynamic-security/#"
    state = {
        "clients": [_dynsec_client("reader", "pw", "reader"), _dynsec_client("admin", "pw", "admin")],
        "roles": [
            {"rolename": "reader", "acls": [{"acltype": "subscribePattern", "topic": "allowed/#", "allow": True}]},
            {
                "rolename": "admin",
                "acls": [
                    {"acltype": kind, "topic": topic, "allow": True}
                    for kind in ("publishClientSend", "publishClientReceive", "subscribePattern")
                    for topic in (control, "allowed/#")
                ],
            },
        ],
        "defaultACLAccess": {
            "publishClientSend": False,
            "publishClientReceive": True,
            "subscribe": False,
            "unsubscribe": True,
        },
    }
    (tmp_path / "dynsec.json").write_text(json.dumps(state))
    port = free_port()
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous false\npersistence false\nuser {getpass.getuser()}\n"
        f"plugin {PLUGIN}\nplugin_opt_config_file {tmp_path / 'dynsec.json'}\n"
    )
    proc = subprocess.Popen(["mosquitto", "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"private mosquitto did not start on port {port}")
                time.sleep(0.1)
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _admin(port: int) -> mqtt.Client:
    client = mqtt.Client(CallbackAPIVersion.VERSION2)
    client.username_pw_set("admin", "pw")
    client.connect("127.0.0.1", port)
    client.loop_start()
    return client


@needs_acl_broker
def test_a_subscription_the_broker_refuses_fails_at_once_naming_the_filter(hub_dir, acl_broker):  # noqa: F811
    url = f"mqtt://reader:pw@127.0.0.1:{acl_broker}"
    app_args = ["listen", "--hub", str(hub_dir), "--mqtt", url, "--topic", "allowed/+/readings"]
    started = time.monotonic()
    result = CliRunner().invoke(_app(), [*app_args, "--topic", "secret/#", "--duration", "20"])
    assert time.monotonic() - started < 8
    message = str(result.exception)
    assert isinstance(result.exception, CityAgentError), result.output
    assert "refused the subscription to 'secret/#' (0x80" in message and "user 'reader'" in message
    assert "'allowed/+/readings'" not in message  # the granted one is not blamed
    assert "listening on" not in result.output


@needs_acl_broker
def test_a_subscription_refused_after_a_reconnect_stops_the_listener_keeping_what_came(hub_dir, acl_broker):  # noqa: F811
    ready, outcome = threading.Event(), {}
    url = f"mqtt://reader:pw@127.0.0.1:{acl_broker}"

    def run() -> None:
        try:
            outcome["stats"] = listen(hub_dir, url, ["allowed/+/readings"], duration=30, on_ready=ready.set)
        except CityAgentError as e:
            outcome["error"] = e

    worker = threading.Thread(target=run)
    worker.start()
    assert ready.wait(10)
    admin = _admin(acl_broker)
    reading = json.dumps(traffic("s0", "2026-03-02T04:00:00+08:00")).encode()
    admin.publish("allowed/traffic/readings", reading, qos=1).wait_for_publish(5)
    time.sleep(0.5)  # delivered to the listener, which holds it in its batch (flush_seconds 5)
    # the broker kicks the reader when its role changes; paho reconnects and subscribes again, now refused
    command = {"command": "removeRoleACL", "rolename": "reader", "acltype": "subscribePattern", "topic": "allowed/#"}
    admin.publish("$CONTROL/dynamic-security/v1", json.dumps({"commands": [command]}), qos=1).wait_for_publish(5)
    started = time.monotonic()
    worker.join(20)
    admin.disconnect()
    admin.loop_stop()
    assert not worker.is_alive() and time.monotonic() - started < 15  # not the whole 30 s
    message = str(outcome.get("error"))
    assert "refused the subscription to 'allowed/+/readings'" in message, outcome
    assert "(1 reading(s) appended and 0 rejected before that)" in message
    assert len(read_hub(hub_dir).tables["traffic"]) == 3 * 24 + 1


# --- Ctrl-C and SIGTERM --------------------------------------------------------------------------------------------


def _lines(stream) -> queue.Queue:
    """The stream's lines as they come (a blocking readline could hang the test), None at its end."""
    lines: queue.Queue = queue.Queue()

    def pump() -> None:
        for line in stream:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    return lines


def _rest(lines: queue.Queue, seen: list[str]) -> str:
    while (line := lines.get(timeout=30)) is not None:
        seen.append(line)
    return " ".join(" ".join(seen).split())  # rich may wrap a long line


def _wait_for(lines: queue.Queue, text: str, seen: list[str], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=0.2)
        except queue.Empty:
            continue
        if line is None:  # the listener exited
            break
        seen.append(line)
        if text in line:
            return
    pytest.fail(f"no {text!r} from the listener; it said: {''.join(seen)}")


@needs_broker
@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 0)])
def test_a_signal_finishes_the_batch_prints_the_summary_and_loses_nothing(tmp_path, hub_dir, session, sig, code):  # noqa: F811
    prefix, cid = session
    topic = f"{prefix}/+/readings"
    env = {**os.environ, "CITYAGENT_HOME": str(tmp_path / "home"), "PYTHONUNBUFFERED": "1", "COLUMNS": "400"}
    args = ["hub", "listen", "--hub", str(hub_dir), "--topic", topic, "--client-id", cid]
    # a batch that only the stop can flush: whatever was received must be written then
    args += ["--batch", "1000", "--flush-seconds", "600"]
    proc = subprocess.Popen([str(CITYAGENT), *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, seen = _lines(proc.stdout), []
    try:
        _wait_for(out, "listening on", seen)
        steps = [f"2026-03-02T{4 + k // 4:02d}:{15 * (k % 4):02d}:00+08:00" for k in range(20)]
        readings = [traffic(s, ts) for ts in steps for s in ("s0", "s1", "s2")]  # 60, in time order
        half = threading.Event()

        def send() -> None:
            for i, reading in enumerate(readings):
                publish([(f"{prefix}/traffic/readings", reading)])
                if i == len(readings) // 3:
                    half.set()

        sender = threading.Thread(target=send)
        sender.start()
        assert half.wait(30)
        time.sleep(0.5)  # let some arrive at the listener, while more are still being sent
        proc.send_signal(sig)
        sender.join(60)
        assert proc.wait(timeout=60) == code
    finally:
        if proc.poll() is None:
            proc.kill()
    stdout, stderr = _rest(out, seen), proc.stderr.read()
    assert "Traceback" not in stderr and "interrupted" not in stdout + stderr, stderr
    summary = re.search(r"(\d+) reading\(s\) appended in \d+ file\(s\) from (\d+) message\(s\); 0 rejected", stdout)
    assert summary, stdout + stderr
    accepted, received = int(summary[1]), int(summary[2])
    assert accepted == received >= 1  # every reading received before the signal was written
    assert len(read_hub(hub_dir).tables["traffic"]) == 3 * 24 + accepted
    # the rest waited at the broker (durable session): a second session gets exactly them
    rest = listen(hub_dir, topics=[topic], client_id=cid, max_messages=len(readings) - received, duration=20)
    assert rest.accepted == len(readings) - received and rest.rejected == 0
    hub = read_hub(hub_dir)
    assert len(hub.tables["traffic"]) == 3 * 24 + len(readings) and validate_hub(hub).ok
