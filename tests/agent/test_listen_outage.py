"""A long-running listener says when it loses the broker and when it is back (paho reconnects by itself), and
reports its running counts now and then; readings published during the outage still arrive."""

import socket
import threading
import time

import pytest

from cityagent.agent.listen import listen
from cityagent.hub import write_hub
from tests.agent.test_listen import needs_broker, publish, session, traffic  # noqa: F401
from tests.factories import tiny_hub
from tests.mlflow_servers import free_port


class Proxy:
    """A TCP relay to the broker on 127.0.0.1:1883 that can be cut (every connection closed) and restored."""

    def __init__(self, port: int) -> None:
        self.port, self.conns, self.server = port, [], None

    def start(self) -> "Proxy":
        self.server = socket.create_server(("127.0.0.1", self.port), reuse_port=True)
        threading.Thread(target=self._accept, args=(self.server,), daemon=True).start()
        return self

    def _accept(self, server: socket.socket) -> None:
        while True:
            try:
                client, _ = server.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", 1883))
            self.conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(a: socket.socket, b: socket.socket) -> None:
        try:
            while data := a.recv(65536):
                b.sendall(data)
        except OSError:
            pass
        for s in (a, b):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cut(self) -> None:
        self.server.close()
        for s in self.conns:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()
        self.conns = []


def wait_for(lines: list[str], text: str, timeout: float = 30) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if any(text in line for line in lines):
            return
        time.sleep(0.1)
    pytest.fail(f"no line with {text!r} within {timeout:g} s: {lines}")


@needs_broker
def test_the_listener_says_when_the_broker_is_lost_and_back(tmp_path, session):  # noqa: F811
    hub = tmp_path / "hub"
    write_hub(tiny_hub(), hub)
    prefix, cid = session
    proxy = Proxy(free_port()).start()
    lines: list[str] = []
    ready, stop = threading.Event(), threading.Event()
    result: dict = {}
    args = {"url": f"mqtt://127.0.0.1:{proxy.port}", "topics": [f"{prefix}/+/readings"], "client_id": cid}
    worker = threading.Thread(
        target=lambda: result.update(
            stats=listen(
                hub,
                **args,
                keepalive=5,
                flush_seconds=0.2,
                stop=stop,
                on_ready=ready.set,
                say=lines.append,
                report_seconds=0,
            )
        )
    )
    worker.start()
    try:
        assert ready.wait(15)
        proxy.cut()
        wait_for(lines, f"lost the MQTT broker 127.0.0.1:{proxy.port}")
        publish([(f"{prefix}/traffic/readings", traffic("s0", "2026-03-02T04:00:00+08:00"))])  # while away
        proxy.start()
        wait_for(lines, f"reconnected to the MQTT broker 127.0.0.1:{proxy.port}")
        wait_for(lines, "1 reading(s) appended, 0 rejected so far")  # the durable session kept it
    finally:
        stop.set()
        worker.join(30)
        proxy.cut()
    assert result["stats"].accepted == 1
    assert sum("lost the MQTT broker" in line for line in lines) == 1  # once per outage, not per retry
