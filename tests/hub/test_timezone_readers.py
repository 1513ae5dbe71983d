"""Every reader of hub.json names a misspelt timezone, with the nearest zone, before laying data on its grid."""

import json

import pytest

from cityagent.agent.livehub import LiveHub
from cityagent.errors import ConfigError, HubError
from cityagent.hub import write_hub
from cityagent.hub.hub import MANIFEST
from cityagent.hub.raydata import _meta
from tests.factories import tiny_hub


@pytest.fixture
def misspelt(tmp_path):
    root = tmp_path / "hub"
    write_hub(tiny_hub(), root)
    manifest = json.loads((root / MANIFEST).read_text())
    (root / MANIFEST).write_text(json.dumps(manifest | {"timezone": "Asia/Shangai"}))
    return root


def test_the_live_hub_names_the_zone_and_its_nearest(misspelt):
    with pytest.raises(
        HubError, match=r"hub\.json: timezone 'Asia/Shangai' is not an IANA zone; did you mean 'Asia/Shanghai'"
    ):
        LiveHub(misspelt)


def test_a_corrupt_manifest_is_named_by_the_live_hub(misspelt):
    (misspelt / MANIFEST).write_text("{not json")
    with pytest.raises(HubError, match=r"hub\.json is not a valid hub manifest: .*; fix it or restore it from a copy"):
        LiveHub(misspelt)


def test_ray_windows_name_the_zone_from_the_manifest_or_the_argument(misspelt, tmp_path):
    with pytest.raises(ConfigError, match=r"hub\.json: timezone 'Asia/Shangai' is not an IANA zone"):
        _meta(str(misspelt), None, None)
    assert _meta(str(misspelt), None, "Asia/Shanghai").timezone == "Asia/Shanghai"  # the argument overrides it
    with pytest.raises(ConfigError, match=r"timezone=: timezone 'Europe/Londn' is not an IANA zone; did you mean"):
        _meta(str(tmp_path), "5min", "Europe/Londn")
