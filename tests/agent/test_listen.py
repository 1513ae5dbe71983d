"""Live sensing: readings over a real Mosquitto broker land in the hub as validated part files; the rest in the
dead-letter file with the raw payload and the reason."""

import json
import re
import socket
import uuid
from pathlib import Path

import paho.mqtt.client as mqtt
import pandas as pd
import pyarrow.parquet as pq
import pytest
import typer
from paho.mqtt.enums import CallbackAPIVersion
from typer.testing import CliRunner

from cityagent.agent.cli_agent_ops import listen as listen_command
from cityagent.agent.deadletter import read_rejections
from cityagent.agent.listen import listen
from cityagent.agent.livehub import LiveHub
from cityagent.agent.microbatch import append_batch
from cityagent.agent.mqtt import parse_url
from cityagent.agent.readings import Rejected, parse_payload, table_for_topic, to_record
from cityagent.errors import CityAgentError, ConfigError, HubError
from cityagent.hub import read_hub, write_hub
from cityagent.hub.validate import validate_hub
from tests.factories import tiny_hub

TZ = "Asia/Shanghai"  # tiny_hub: s0..s2 and z0..z1, 15-min readings 2026-03-01 22:00 .. 2026-03-02 03:45


def _broker_up() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 1883), timeout=1):
            return True
    except OSError:
        return False


needs_broker = pytest.mark.skipif(not _broker_up(), reason="no MQTT broker (Mosquitto) on 127.0.0.1:1883")


@pytest.fixture
def hub_dir(tmp_path) -> Path:
    path = tmp_path / "hub"
    write_hub(tiny_hub(), path)
    return path


@pytest.fixture
def session():
    """A topic prefix and a durable client id of this test's own; the broker forgets the session afterwards."""
    prefix, cid = f"test-{uuid.uuid4().hex[:8]}", f"cityagent-test-{uuid.uuid4().hex[:8]}"
    yield prefix, cid
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=cid, clean_session=True)
    client.connect("127.0.0.1", 1883)
    client.disconnect()


def publish(messages: list[tuple[str, object]]) -> None:
    client = mqtt.Client(CallbackAPIVersion.VERSION2)
    client.connect("127.0.0.1", 1883)
    client.loop_start()
    for topic, body in messages:
        payload = body if isinstance(body, bytes) else json.dumps(body).encode()
        client.publish(topic, payload, qos=1).wait_for_publish(timeout=5)
    client.disconnect()
    client.loop_stop()


def traffic(sensor: str, ts: str, speed: float = 30.0, flow: float = 4.0) -> dict:
    return {"sensor_id": sensor, "ts": ts, "speed": speed, "flow": flow}


@needs_broker
def test_cli_listens_appends_valid_readings_and_sets_the_rest_aside(hub_dir, session):
    prefix, cid = session
    topics = [f"{prefix}/+/readings"]
    listen(
        hub_dir, topics=topics, client_id=cid, duration=0.1
    )  # opens the durable session: the broker keeps what follows
    t, d = f"{prefix}/traffic/readings", f"{prefix}/demand/readings"
    messages = [
        (t, traffic("s0", "2026-03-02T04:00:00+08:00", speed=31.2)),
        (t, traffic("s1", "2026-03-01T20:00:00Z", speed=42.0)),  # 04:00 local, sent in UTC
        (d, {"zone_id": "z1", "ts": "2026-03-02T04:00:00+08:00", "count": 7}),
        (t, [traffic("s2", "2026-03-02T04:00:00+08:00"), {"sensor_id": "s2", "speed": 1.0}]),  # one good, one bad
        (t, b"{not json"),
        (t, traffic("s9", "2026-03-02T04:00:00+08:00")),  # unknown sensor
        (t, traffic("s0", "2026-03-02T03:45:00+08:00")),  # already in the hub
        (t, traffic("s0", "2026-03-02T04:00:00+08:00")),  # duplicate within this batch
        (t, traffic("s1", "2026-03-02T04:05:00+08:00")),  # off the 15-min grid
        (t, traffic("s1", "2026-03-02T04:15:00+08:00", speed=-3.0)),
        (t, {**traffic("s1", "2026-03-02T04:15:00+08:00"), "colour": "red"}),
        (t, traffic("s1", "2026-03-02T04:15:00")),  # no UTC offset
        (f"{prefix}/parking/readings", {"lot": "p1"}),
    ]
    publish(messages)
    app = typer.Typer()
    app.command()(listen_command)
    app.command("other")(lambda: None)  # two commands, so typer keeps the sub-command name
    args = ["listen", "--hub", str(hub_dir), "--topic", topics[0], "--client-id", cid]
    result = CliRunner().invoke(app, [*args, "--max-messages", str(len(messages)), "--duration", "15"])
    assert result.exit_code == 0, result.output
    assert "4 reading(s) appended" in result.output and "10 rejected" in result.output

    hub = read_hub(hub_dir)
    assert validate_hub(hub).ok, validate_hub(hub)
    new = hub.tables["traffic"].set_index(["sensor_id", "ts"]).sort_index()
    at4 = pd.Timestamp("2026-03-02 04:00", tz=TZ)
    assert new.loc[("s0", at4), "speed"] == 31.2 and new.loc[("s1", at4), "speed"] == 42.0
    assert ("s2", at4) in new.index and len(hub.tables["traffic"]) == 3 * 24 + 3
    demand = hub.tables["demand"]
    assert demand[(demand.zone_id == "z1") & (demand.ts == at4)]["count"].tolist() == [7.0]
    assert str(hub.tables["traffic"]["ts"].dtype) == f"datetime64[ns, {TZ}]"

    rejected = read_rejections(hub_dir)
    kinds = sorted(r["kind"] for r in rejected)
    assert kinds == sorted(
        ["malformed", "malformed", "unknown id", "duplicate", "duplicate", "off grid", "malformed", "malformed",
         "malformed", "unknown topic"]
    )  # fmt: skip
    by_payload = {r["payload"]: r for r in rejected}
    assert by_payload["{not json"]["reason"].startswith("payload is not UTF-8 JSON")
    assert "s9" in by_payload[json.dumps(traffic("s9", "2026-03-02T04:00:00+08:00"))]["reason"]
    array = next(r for r in rejected if r["index"] is not None)
    assert array["index"] == 1 and "missing field(s) ['ts']" in array["reason"]
    assert all(r["topic"].startswith(prefix) and r["received"] for r in rejected)


@needs_broker
def test_a_second_session_rejects_what_the_first_wrote(hub_dir, session):
    prefix, cid = session
    topics = [f"{prefix}/+/readings"]
    listen(hub_dir, topics=topics, client_id=cid, duration=0.1)
    reading = traffic("s0", "2026-03-02T04:00:00+08:00")
    publish([(f"{prefix}/traffic/readings", reading)])
    first = listen(hub_dir, topics=topics, client_id=cid, max_messages=1, duration=10)
    publish(
        [
            (f"{prefix}/traffic/readings", reading),
            (f"{prefix}/traffic/readings", traffic("s0", "2026-03-02T04:15:00+08:00")),
        ]
    )
    second = listen(hub_dir, topics=topics, client_id=cid, max_messages=2, duration=10, batch=1)
    assert (first.accepted, first.rejected) == (1, 0)
    assert (second.accepted, second.rejected) == (1, 1) and second.reasons == {"duplicate": 1}
    assert second.files == 1 and validate_hub(read_hub(hub_dir)).ok


def test_unreachable_broker_is_a_clear_error(hub_dir):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(CityAgentError, match=f"cannot reach the MQTT broker at 127.0.0.1:{port}"):
        listen(hub_dir, url=f"mqtt://127.0.0.1:{port}", duration=1)


def test_broker_urls():
    assert parse_url("mqtt://u:p%40ss@broker:1884") == ("broker", 1884, False, "u", "p@ss")
    assert parse_url("mqtts://broker") == ("broker", 8883, True, None, None)
    with pytest.raises(ConfigError, match="must look like mqtt://host:1883"):
        parse_url("http://broker")


@pytest.mark.parametrize(
    ("topic", "payload", "reason"),
    [
        ("city/traffic/readings", b"\xff", "not UTF-8 JSON"),
        ("city/traffic/readings", b"[]", "empty JSON array"),
        (
            "city/traffic/readings",
            b'{"sensor_id": "s0", "ts": "2026-03-02T04:00:00+08:00", "speed": NaN}',
            "not UTF-8 JSON",
        ),
        (
            "city/traffic/readings",
            b'{"sensor_id": 12, "ts": "2026-03-02T04:00:00+08:00", "speed": 1}',
            "non-empty string",
        ),
        ("city/traffic/readings", b'{"sensor_id": "s0", "ts": "yesterday", "speed": 1}', "not ISO-8601"),
        (
            "city/traffic/readings",
            b'{"sensor_id": "s0", "ts": "2026-03-02T04:00:00+08:00", "speed": true}',
            "finite number",
        ),
        ("city/demand/readings", b'{"zone_id": "z0", "ts": "2026-03-02T04:00:00+08:00"}', "missing field(s) ['count']"),
        (
            "city/incidents/readings",
            b'{"ts": "2026-03-02T04:00:00+08:00", "severity": 1, "lat": 95, "lon": 1}',
            "[-90.0, 90.0]",
        ),
        ("city/incidents/readings", b'{"ts": "2026-03-02T04:00:00+08:00", "severity": 1}', "one of the field groups"),
        ("city/decisions/readings", b"{}", "names no hub table"),
    ],
)
def test_malformed_readings_say_why(topic, payload, reason):
    with pytest.raises(Rejected, match=re.escape(reason)):
        for obj in parse_payload(payload):
            to_record(table_for_topic(topic), obj, TZ)


def test_late_readings_and_part_order(tmp_path):
    """A reading older than its series' newest one is late; parts sort in write order, no temp files remain."""
    hub = tiny_hub()
    traffic_df = hub.tables["traffic"]
    hub.tables["traffic"] = traffic_df[traffic_df.ts != pd.Timestamp("2026-03-02 03:00", tz=TZ)]  # a gap at 03:00
    write_hub(hub, tmp_path / "hub")
    live = LiveHub(tmp_path / "hub")
    rec = lambda s, ts: to_record("traffic", traffic(s, ts), TZ)  # noqa: E731
    first = append_batch(
        live, "traffic", [rec("s0", "2026-03-02T04:00:00+08:00"), rec("s1", "2026-03-02T04:00:00+08:00")]
    )
    late = append_batch(
        live, "traffic", [rec("s0", "2026-03-02T03:00:00+08:00"), rec("s1", "2026-03-02T04:15:00+08:00")]
    )
    assert first.accepted == 2 and late.accepted == 1
    assert late.rejected[0][0] == "late" and "already reaches 2026-03-02 04:00:00+08:00" in late.rejected[0][1]
    folder = tmp_path / "hub" / "traffic" / "date=2026-03-02"
    names = sorted(p.name for p in folder.iterdir())
    assert names == ["part-0.parquet", first.written[0].name, late.written[0].name]  # UUIDv7: write order
    assert pq.read_table(late.written[0]).num_rows == 1
    read = read_hub(tmp_path / "hub")
    assert validate_hub(read).ok  # series still in time order: no 'go backwards' error
    # a fresh listener (new process) learns the same keys from disk
    again = append_batch(LiveHub(tmp_path / "hub"), "traffic", [rec("s1", "2026-03-02T04:15:00+08:00")])
    assert again.rejected[0][0] == "duplicate"


def test_only_hub_directories_are_listened_into(tmp_path):
    with pytest.raises(HubError, match="not a local hub directory"):
        LiveHub(tmp_path)
    hub = tiny_hub()
    del hub.tables["sensors"], hub.tables["edges"]
    write_hub(hub, tmp_path / "h")
    with pytest.raises(HubError, match=r"no sensors\.parquet"):
        append_batch(
            LiveHub(tmp_path / "h"), "traffic", [to_record("traffic", traffic("s0", "2026-03-02T04:00:00+08:00"), TZ)]
        )
