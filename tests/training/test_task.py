"""load_task: where the hub comes from, the domain's table and target, fingerprints and clear errors."""

import re
import shutil
from pathlib import Path

import pandas as pd
import pytest

from cityagent.errors import ConfigError, HubError
from cityagent.hub.hub import Hub
from cityagent.hub.importers.datasets import import_known
from cityagent.hub.io import read_hub, write_hub
from cityagent.training.config import TaskConfig, load_config
from cityagent.training.task import check_named, load_task, task_name

ROOT = Path(__file__).resolve().parents[2]


def test_synthetic_default_city_is_made_once_under_home(tmp_path, caplog):
    cfg = TaskConfig(params={"input_len": 12, "horizon": 3})
    task, fp = load_task(cfg)
    manifest = tmp_path / "home" / "hub" / "hub.json"
    assert manifest.is_file() and "synthesising" in caplog.text
    assert task.feature_names[0] == "speed" and len(task.nodes) == 64 and task.horizon == 3
    assert re.fullmatch(r"[0-9a-f]{64}", fp.sha256) and fp.source == str(tmp_path / "home" / "hub")
    stamp = manifest.stat().st_mtime_ns
    _, again = load_task(cfg)
    assert manifest.stat().st_mtime_ns == stamp and again == fp  # same data, same fingerprint
    assert task_name(cfg) == "traffic-synthetic"


def test_the_default_city_has_accidents_to_learn_and_score_risk_on():
    # `cityagent train risk` on a fresh home: configs/risk.yaml's task on the city synthesised under home
    cfg = load_config(ROOT / "configs" / "risk.yaml", {}).task
    task, _ = load_task(cfg)
    for name in ("train", "test"):
        _, y, _ = getattr(task, name).arrays()
        assert (y > 0).sum() >= 10, f"{name} split holds {(y > 0).sum()} cell-steps with risk"


@pytest.mark.parametrize(("domain", "target", "nodes"), [("demand", "count", 4), ("risk", "severity", 4)])
def test_domain_picks_table_and_target(tiny_hub, domain, target, nodes):
    task, _ = load_task(TaskConfig(domain=domain, hub=str(tiny_hub), params={"input_len": 6, "horizon": 2}))
    assert task.feature_names[0] == target and len(task.nodes) == nodes
    assert task.extra["grid"] == [2, 2]  # zones of the synthetic grid: grid models can use it


def test_fingerprint_follows_the_windows(tiny_hub):
    _, a = load_task(TaskConfig(hub=str(tiny_hub), params={"input_len": 6, "horizon": 3}))
    _, b = load_task(TaskConfig(hub=str(tiny_hub), params={"input_len": 4, "horizon": 3}))
    assert a.sha256 != b.sha256 and a.nodes == b.nodes == 6


def test_unknown_dataset_lists_valid_ones():
    with pytest.raises(ConfigError, match=r"unknown dataset 'nyc-bikes'.*synthetic.*sz-taxi"):
        load_task(TaskConfig(dataset="nyc-bikes"))


def test_hub_too_short_says_steps_it_has_and_needs(tiny_hub):
    with pytest.raises(HubError, match=r"168 steps.*needs 103"):
        load_task(TaskConfig(hub=str(tiny_hub), params={"input_len": 100, "horizon": 3}))


def test_known_dataset_goes_through_its_importer(shared_data):
    task, fp = load_task(TaskConfig(dataset="sz-taxi", protocol="tgcn", params={"input_len": 4, "horizon": 1}))
    assert fp.source == "dataset:sz-taxi" and len(task.nodes) == 40 and task.protocol == "tgcn"


def test_a_named_hub_that_is_not_there_is_an_error_not_a_new_city(tmp_path):
    typo = tmp_path / "hbu"
    with pytest.raises(HubError, match=rf"no hub at {re.escape(str(typo))}: check the path"):
        load_task(TaskConfig(hub=str(typo), params={"input_len": 6, "horizon": 3}))
    assert not typo.exists()  # nothing was synthesised there


def copy_of(hub: Path, dest: Path) -> Path:
    shutil.copytree(hub, dest)
    return dest


def renamed(hub: Path, dest: Path, name: str, source: str) -> Path:
    """A copy of ``hub`` whose manifest says it is another city, as an importer would write it."""
    city = read_hub(hub)
    city.meta.name, city.meta.source = name, source
    return write_hub(city, dest)


def test_another_city_is_not_trained_and_registered_as_synthetic(tiny_hub, tmp_path):
    city = renamed(tiny_hub, tmp_path / "pc", "Pengcheng Roads", "tgcn-csv import of roads.csv")
    quick = {"input_len": 6, "horizon": 3}
    with pytest.raises(
        ConfigError, match=r"holds 'Pengcheng Roads'.*registered as 'traffic-synthetic'.*task\.dataset=pengcheng-roads"
    ):
        load_task(TaskConfig(hub=str(city), params=quick))
    _, fp = load_task(TaskConfig(hub=str(city), dataset="pengcheng-roads", params=quick))
    assert fp.source == str(city) and task_name(TaskConfig(dataset="pengcheng-roads")) == "traffic-pengcheng-roads"


def test_a_hub_is_not_registered_as_a_known_dataset_it_is_not(tiny_hub, tmp_path):
    bikes = renamed(tiny_hub, tmp_path / "bikes", "jonas-nyc-bike", "jonas:NYC.npz")
    with pytest.raises(ConfigError, match=r"not the known dataset 'jonas-nyc'.*task\.dataset=jonas-nyc-bike"):
        load_task(TaskConfig(hub=str(bikes), dataset="jonas-nyc", params={"input_len": 6, "horizon": 3}))
    didi = renamed(tiny_hub, tmp_path / "didi", "DiDi_Xian", "uctb:DiDi_Xian.tar.gz")  # `hub import` names it so
    load_task(TaskConfig(hub=str(didi), dataset="didi-xian", params={"input_len": 6, "horizon": 3}))


def test_the_imported_jonas_hub_passes_its_shipped_config(shared_data):
    cfg = load_config(ROOT / "configs" / "datasets" / "jonas-nyc-eastnet.yaml", {}).task
    check_named(cfg, import_known(cfg.dataset, data_dir=shared_data), "nyc")  # no ConfigError


def test_a_hub_named_outright_wins_over_a_known_datasets_importer(tiny_hub, tmp_path):
    city = renamed(tiny_hub, tmp_path / "sz", "sz-taxi", "a re-import")
    task, fp = load_task(TaskConfig(hub=str(city), dataset="sz-taxi", params={"input_len": 6, "horizon": 3}))
    assert fp.source == str(city) and len(task.nodes) == 6  # the hub's 6 sensors, not SZ-taxi's 156 roads


def test_a_hub_that_breaks_the_contracts_is_refused_with_the_validators_words(tiny_hub, tmp_path):
    bad = copy_of(tiny_hub, tmp_path / "bad")
    traffic = bad / "traffic"
    part = sorted(traffic.rglob("*.parquet"))[0]
    df = pd.read_parquet(part)
    df.loc[df.index[3], "speed"] = -5.0
    df.to_parquet(part, index=False)
    with pytest.raises(HubError, match=r"is not valid: ERROR traffic\.speed.*negative.*cityagent hub validate"):
        load_task(TaskConfig(hub=str(bad), params={"input_len": 6, "horizon": 3}))


def test_a_nan_reading_is_refused_with_a_fix_that_works(tiny_hub, tmp_path):
    city = read_hub(tiny_hub)
    traffic = city.tables["traffic"]
    city.tables["traffic"] = traffic.assign(speed=traffic.speed.where(traffic.index != 40))
    bad = write_hub(city, tmp_path / "nan")
    cfg = TaskConfig(hub=str(bad), params={"input_len": 6, "horizon": 3, "impute": "ffill"})
    with pytest.raises(HubError, match=r"1 NaN/inf value\(s\) in 'speed'; drop those rows: .*task\.params\.impute"):
        load_task(cfg)  # impute fills absent rows, not stored NaN: the message must not suggest it would
    city.tables["traffic"] = traffic.drop(index=40).reset_index(drop=True)  # what the message says to do
    fixed = write_hub(city, tmp_path / "dropped")
    task, _ = load_task(cfg.model_copy(update={"hub": str(fixed)}))
    assert len(task.train) > 0


def test_a_hub_without_test_windows_fails_before_training(tiny_hub, tmp_path):
    cut = copy_of(tiny_hub, tmp_path / "cut")
    hub = read_hub(cut)
    traffic = hub.table("traffic")
    last = traffic["ts"].max() - pd.Timedelta(hours=30)  # a gap over the whole test part: no complete window
    tables = {**hub.tables, "traffic": traffic[traffic["ts"] <= last]}
    write_hub(Hub(tables, hub.meta), cut)
    with pytest.raises(HubError, match=r"left no (validation and no )?test windows.*gap at the end"):
        load_task(TaskConfig(hub=str(cut), params={"input_len": 6, "horizon": 3}))


def test_a_table_prefix_belongs_to_sql_hubs(tiny_hub):
    with pytest.raises(ConfigError, match=r"task\.hub_prefix='city_' names tables in a SQL database"):
        load_task(TaskConfig(hub=str(tiny_hub), hub_prefix="city_", params={"input_len": 6, "horizon": 3}))


def test_a_boolean_where_a_number_belongs_is_refused():
    with pytest.raises(ConfigError, match=r"train\.max_epochs.*not the boolean true"):
        load_config(None, ["train.max_epochs=true"])
    assert load_config(None, ["train.refit=true"]).train.refit is True


@pytest.mark.postgres
def test_a_sql_hub_written_with_a_prefix_is_read_with_it(tiny_hub, pg_url, sql_prefix):
    write_hub(read_hub(tiny_hub), pg_url, prefix=sql_prefix)
    params = {"input_len": 6, "horizon": 3}
    task, fp = load_task(TaskConfig(hub=pg_url, hub_prefix=sql_prefix, params=params))
    files, _ = load_task(TaskConfig(hub=str(tiny_hub), params=params))
    assert task.nodes == files.nodes and len(task.test) == len(files.test) > 0 and fp.source == pg_url
