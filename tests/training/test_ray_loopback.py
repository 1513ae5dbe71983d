"""The local Ray that ``fit`` and ``tune`` start serves this machine only: none of its ports face the network."""

import ipaddress

import psutil
import pytest
import ray

from cityagent.training.ray_cluster import connect


def _listening(procs: list[psutil.Process]) -> set[tuple[str, str, int]]:
    """``(process name, address, port)`` of every TCP socket the processes listen on."""
    out = set()
    for p in procs:
        try:
            out |= {
                (p.name(), c.laddr.ip, c.laddr.port)
                for c in p.net_connections(kind="tcp")
                if c.status == psutil.CONN_LISTEN
            }
        except psutil.Error:  # a worker that exited meanwhile
            continue
    return out


def _loopback(ip: str) -> bool:
    addr = ipaddress.ip_address(ip.split("%")[0])
    mapped = getattr(addr, "ipv4_mapped", None)  # ::ffff:127.0.0.1 from a dual-stack socket
    return (mapped or addr).is_loopback


@pytest.mark.ray
def test_a_local_ray_listens_on_loopback_only():
    assert connect(None, 1, dashboard=True)  # started here: GCS, raylet, dashboard and its agents
    try:

        @ray.remote
        class Probe:  # an actor and a task start core workers, which listen too
            def ping(self) -> int:
                return 1

        probe = Probe.remote()
        assert ray.get(probe.ping.remote()) == 1
        assert ray.util.get_node_ip_address() == "127.0.0.1"
        sockets = _listening(psutil.Process().children(recursive=True))
    finally:
        ray.shutdown()
    names = {name for name, _, _ in sockets}
    assert {"gcs_server", "raylet"} <= names and any(n.startswith("ray::") for n in names), sockets
    exposed = sorted(s for s in sockets if not _loopback(s[1]))
    assert not exposed, f"the local Ray listens beyond loopback: {exposed}"


def test_connecting_to_a_cluster_keeps_rays_network_address_switch():
    """The loopback pin is undone after the local ``ray.init``: a cluster joined later still gets the real address."""
    from ray._private import ray_constants

    from cityagent.training.ray_cluster import _loopback_node

    before = ray_constants.ENABLE_RAY_CLUSTER
    with _loopback_node():
        assert ray_constants.ENABLE_RAY_CLUSTER is False
    assert ray_constants.ENABLE_RAY_CLUSTER == before
