"""cluster.yaml (AWS) and cluster.onprem.yaml (machines over SSH) checked offline with Ray's own
launcher validation (there is no `ray up --dry-run`), plus what validation cannot see: that the
setup commands use only files of this repository, and that no credentials are in the files."""

import copy
import re
import shlex
from pathlib import Path

import pytest
import yaml

pytest.importorskip("ray")
from ray.autoscaler._private.util import prepare_config, validate_config  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
FILES = ["cluster.yaml", "cluster.onprem.yaml"]
COMMANDS = ["initialization_commands", "setup_commands", "head_setup_commands",
            "worker_setup_commands", "head_start_ray_commands", "worker_start_ray_commands"]


def load(name: str) -> dict:
    return yaml.safe_load((REPO / name).read_text())


def validated(config: dict) -> dict:
    prepared = prepare_config(copy.deepcopy(config))
    validate_config(prepared)
    return prepared


@pytest.mark.parametrize("name", FILES)
def test_ray_validates_the_shipped_file(name):
    validated(load(name))


def test_the_images_and_environments_pin_ray_and_python():
    assert load("cluster.yaml")["docker"]["image"] == "rayproject/ray:2.60.0-py311-gpu"
    onprem = load("cluster.onprem.yaml")  # no Docker: the project's own environment (make install)
    assert "docker" not in onprem
    assert any("make install" in c for c in onprem["setup_commands"])
    # Ray's v2 autoscaler starts no local-provider worker (rehearsed): the file asks for v1.
    assert "RAY_enable_autoscaler_v2=0" in " ".join(onprem["head_start_ray_commands"])


@pytest.mark.parametrize("name", FILES)
def test_what_must_outlive_the_cluster_is_on_the_shared_filesystem(name):
    config = load(name)
    head = " ".join(config["head_setup_commands"])
    assert "--backend-store-uri sqlite:////shared/mlflow/" in head  # not the head's own disk
    assert "MLFLOW_TRACKING_URI" in head
    assert "EMOREF_CACHE_DIR=/shared/cache" in " ".join(config["setup_commands"])


def test_the_aws_gpu_workers_can_write_the_bucket():
    types = load("cluster.yaml")["available_node_types"]
    for name, kind in types.items():
        if kind["resources"].get("GPU"):
            assert "instance-profile/" in kind["node_config"]["IamInstanceProfile"]["Arn"], name


def test_aws_head_has_no_gpu_and_every_type_declares_its_resources():
    config = load("cluster.yaml")
    types = config["available_node_types"]
    assert types[config["head_node_type"]]["resources"]["GPU"] == 0
    workers = {k: v for k, v in types.items() if k != config["head_node_type"]}
    assert workers and all(v["resources"]["GPU"] >= 1 and v["resources"]["CPU"] >= 1
                           and v["max_workers"] >= v["min_workers"] >= 0 for v in workers.values())
    assert config["max_workers"] >= max(v["max_workers"] for v in workers.values())
    assert "--num-gpus=0" in " ".join(config["head_start_ray_commands"])


def broken_variants():
    unknown = load("cluster.yaml")
    unknown["available_node_types"]["gpu_1x"]["gpus"] = 1  # not a field Ray knows
    yield "unknown field in a node type", unknown
    top = load("cluster.yaml")
    top["head_instance_type"] = "m5.2xlarge"
    yield "unknown top-level field", top
    head = load("cluster.yaml")
    head["head_node_type"] = "p3.2xlarge"  # not one of available_node_types
    yield "head type that is not a node type", head
    typed = load("cluster.yaml")
    typed["available_node_types"]["head"]["resources"] = "CPU: 8"
    yield "resources not a mapping", typed
    onprem = load("cluster.onprem.yaml")
    onprem["available_node_types"] = load("cluster.yaml")["available_node_types"]
    yield "node types on the local provider", onprem


@pytest.mark.parametrize("what,config", list(broken_variants()), ids=lambda v: v
                         if isinstance(v, str) else "")
def test_ray_rejects_a_broken_variant(what, config):
    with pytest.raises(Exception):
        validated(config)


@pytest.mark.parametrize("name", FILES)
def test_setup_commands_use_only_files_of_this_repository(name):
    config = load(name)
    mounts = {target: (REPO / source).resolve() for target, source in config["file_mounts"].items()}
    assert all(source.exists() for source in mounts.values())
    assert all((REPO / rule).exists() for rule in config.get("rsync_filter", []))
    checked = 0
    for key in COMMANDS:
        for command in config.get(key, []):
            cwd = None
            for part in re.split(r"&&|\|\||;|\(|\)", command):
                try:
                    words = shlex.split(part)
                except ValueError:  # a quoted $(...) cut apart: no path of the checkout in it
                    continue
                if words[:1] == ["cd"]:
                    cwd = words[1]
                if words[:2] == ["make", "install"]:  # the project's own environment
                    assert cwd in mounts and "install:" in (mounts[cwd] / "Makefile").read_text()
                    checked += 1
                for word in words:
                    if "/.venv/" in word:  # made by `make install`, not synced
                        continue
                    # A path on a mounted folder must be a file the mount brings along.
                    for target, source in mounts.items():
                        if word == target or word.startswith(target + "/"):
                            assert (source / word[len(target):].lstrip("/")).exists(), (key, word)
                            checked += 1
                if words[:4] == ["pip", "install", "--quiet", "-e"] or words[:3] == [
                        "pip", "install", "-e"]:
                    assert cwd in mounts, (key, command)  # installs the synced checkout
                    assert (mounts[cwd] / words[-1] / "pyproject.toml").exists()
                    checked += 1
                if words[:2] == ["python", "-c"]:
                    for module in re.findall(r"import ([\w, ]+)", words[2])[0].split(","):
                        assert (REPO / module.strip()).is_dir() or (
                            REPO / "src" / module.strip()).is_dir(), module
    assert checked >= 2


@pytest.mark.parametrize("name", FILES)
def test_no_credentials_in_the_file(name):
    text = (REPO / name).read_text()
    for pattern in (r"AKIA[0-9A-Z]{16}", r"aws_secret_access_key", r"aws_access_key_id",
                    r"BEGIN [A-Z ]*PRIVATE KEY", r"password\s*:"):
        assert not re.search(pattern, text, re.IGNORECASE), pattern
