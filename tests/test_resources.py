"""What a config asks of the machine is checked before anything trains or Ray starts: pretrained
weights that can be had, a usable GPU for gpu=true, bf16 on a GPU that has it."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from emoref.config import ConfigError, build_config
from emoref.experiment import check_resources

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """No hub and an empty Hugging Face cache: the weights can come from a local folder only."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    import huggingface_hub.constants as constants
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)


def test_paper_weights_that_cannot_be_had_stop_with_the_key_and_the_fix(offline, tmp_path):
    with pytest.raises(ConfigError) as err:
        check_resources(build_config("paper", [], method="ipr"))
    text = str(err.value)
    assert text.startswith("encoder.model=facebook/wav2vec2-base")
    assert "cache" in text and "encoder.pretrained=false" in text and "local folder" in text
    empty = tmp_path / "empty"
    empty.mkdir()
    for model, what in ((empty, "no config.json"), (tmp_path / "absent", "no such folder")):
        with pytest.raises(ConfigError, match=f"encoder.model={model}: tried the local folder "
                                              f"\\({what}"):
            check_resources(build_config("paper", [f"encoder.model={model}"], method="ipr"))


def test_a_local_checkpoint_folder_passes_and_random_weights_need_none(offline, tmp_path):
    from transformers import Wav2Vec2Config, Wav2Vec2Model
    from emoref.models.encoders import WAV2VEC2_ARCHITECTURES
    folder = tmp_path / "w2v"
    Wav2Vec2Model(Wav2Vec2Config(**WAV2VEC2_ARCHITECTURES["tiny"])).save_pretrained(folder)
    check_resources(build_config("paper", [f"encoder.model={folder}"], method="ipr"))
    check_resources(build_config("paper", ["encoder.pretrained=false"], method="ipr"))


def test_gpu_true_without_a_gpu_or_a_cluster_stops(monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr("emoref.ray_train.cluster_address", lambda: None)
    config = build_config("smoke", ["gpu=true", "workers=1"], method="ipr")
    with pytest.raises(ConfigError, match="gpu=true: this machine has no usable CUDA GPU"):
        check_resources(config)
    # With a Ray cluster configured, its GPU nodes may be elsewhere: not checked here.
    monkeypatch.setattr("emoref.ray_train.cluster_address", lambda: "10.0.0.1:6379")
    check_resources(config)


def test_bf16_on_a_gpu_without_it_stops(monkeypatch):
    # A GPU without bf16 (compute capability 7.5) stands in through torch.cuda's answers: this
    # machine has none to test on.
    monkeypatch.setattr("emoref.ray_train.cluster_address", lambda: None)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a: "Tesla T4")
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a: (7, 5))
    config = build_config("smoke", ["gpu=true", "workers=1", "train.precision=bf16"],
                          method="ipr")
    with pytest.raises(ConfigError, match=r"train.precision=bf16: Tesla T4 \(compute capability "
                                          r"7.5\) has no bf16 support.*fp16"):
        check_resources(config)
    check_resources(build_config("smoke", ["gpu=true", "workers=1", "train.precision=fp16"],
                                 method="ipr"))


def test_the_command_line_stops_before_ray_starts(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf"),
           "RAY_ADDRESS": ""}
    done = subprocess.run([sys.executable, "-m", "runner.train", "ipr", "--preset", "paper",
                           "gpu=false", "--out", str(tmp_path / "out")], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr[-2000:]
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert lines[-1].startswith("error: encoder.model=facebook/wav2vec2-base")
    assert "Ray" not in done.stderr and not (tmp_path / "out").exists()


def test_ray_address_local_means_no_cluster_and_an_address_means_one(monkeypatch):
    from emoref import ray_train
    monkeypatch.setenv("RAY_ADDRESS", "local")  # Ray's value for "start a private instance"
    assert ray_train.cluster_address() is None
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.1:6379")
    assert ray_train.cluster_address() == "10.0.0.1:6379"


def test_a_fine_tuning_setting_on_the_cpu_stops_unless_asked_for(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf"),
           "RAY_ADDRESS": ""}
    done = subprocess.run([sys.executable, "-m", "runner.train", "ipr", "--preset", "paper",
                           "--out", str(tmp_path / "out")], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 2
    error = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert error == [error[0]] and error[0].startswith(
        "error: --preset paper fine-tunes the pretrained encoder facebook/wav2vec2-base")
    assert "Pass gpu=false to mean it" in error[0] and "GPU machine or cluster" in error[0]
    assert not (tmp_path / "out").exists()


def test_gpus_are_looked_for_here_in_the_cluster_and_in_what_it_can_start():
    from runner.preflight import Capacity, check_gpus, scalable_gpus, trials_at_once
    more, kinds = scalable_gpus(REPO / "cluster.yaml")  # the file `ray up` leaves on the head
    assert more == 8 * 1 + 2 * 4 and "gpu_1x (up to 8 x 1 GPU)" in kinds
    config = build_config("smoke", ["gpu=true", "workers=1"], method="ipr")
    with pytest.raises(ConfigError, match="asks for GPUs .* has none and no node type"):
        check_gpus(config, Capacity("the Ray cluster at x", 8, 0, 0), "experiments/x.txt")
    check_gpus(config, Capacity("the Ray cluster at x", 8, 0, more, kinds), "experiments/x.txt")
    assert trials_at_once(Capacity("c", 8, 0, more, kinds), 1, 1, 0) == (0, 16)
    assert trials_at_once(Capacity("c", 8, 2, 0), 2, 1, 0) == (2, 2)


def test_plan_of_the_paper_ipr_file_here_says_it_needs_a_gpu(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf"),
           "RAY_ADDRESS": ""}
    done = subprocess.run([sys.executable, "-m", "runner.tune", "ipr", "--config",
                           "experiments/ipr-iemocap-paper.txt", "--plan",
                           f"corpus.root={tmp_path / 'iemocap'}", "--storage-path",
                           str(tmp_path / "sweeps")], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 2, done.stderr[-2000:]
    plan = done.stdout
    assert plan.startswith("plan: ipr sweep of experiments/ipr-iemocap-paper.txt (preset paper)")
    assert "8 configurations x 5 seeds = 40 seed trainings of 50 epochs" in plan
    assert "1 Ray Train worker(s), each 1 CPU and 1 GPU" in plan
    assert "search_spaces/ipr-finetune.yaml" in plan and "fine-tuned" in plan
    assert "asks for GPUs (gpu=true) and this machine has none" in plan
    assert "corpus root not found" in plan
    assert "Ray" not in done.stderr and not (tmp_path / "sweeps").exists()  # nothing started
