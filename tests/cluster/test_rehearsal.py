"""README's cluster path, rehearsed for real on this machine: `ray up` with Ray's own launcher
over SSH on the shipped cluster.onprem.yaml (addresses, user and key filled in), a head and a
worker that are machines of their own (tests/cluster/machines.py: network, PID and mount
namespaces, a private home and /tmp/ray, the shared filesystem at /shared), sweeps run on the
cluster with `ray exec`, their runs read from the MLflow server the head setup started,
`ray down`, a lost head, and `--resume` on a new head with its new tracking URI.

One cluster for the module (about 25 s to bring up); the tests run in file order, the second
taking the cluster down and bringing it up on a new head.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from tests.cluster.machines import REPO, Machines, cluster_file, machines_missing, \
    reuse_environment

pytest.importorskip("ray")
pytestmark = pytest.mark.rehearsal

RAY = str(Path(sys.executable).parent / "ray")
SMOKE = ("cd ~/emoref && .venv/bin/python -m runner.tune ipr --smoke-test --cpus-per-trial 2 "
         "--no-baselines --quiet --storage-path /shared/sweeps")


def launcher(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """Ray's cluster launcher as a user runs it, from the checkout."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_ADDRESS")}
    return subprocess.run([RAY, *args], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=timeout)


def ok(done: subprocess.CompletedProcess) -> str:
    assert done.returncode == 0, (" ".join(done.args[:3]) + "\n" + done.stdout[-4000:] +
                                  done.stderr[-4000:])
    return done.stdout


def workers_joined(path: Path, count: int, timeout_s: float = 180) -> None:
    """Waits until the head's Ray sees `count` nodes (the autoscaler starts the worker after
    `ray up` returns)."""
    deadline = time.monotonic() + timeout_s
    script = ("~/emoref/.venv/bin/python -c 'import ray; ray.init(address=\"auto\", "
              "logging_level=\"ERROR\"); print(\"NODES\", len([n for n in ray.nodes() "
              "if n[\"Alive\"]]))'")
    while time.monotonic() < deadline:
        done = launcher("exec", str(path), script, timeout=120)
        if f"NODES {count}" in done.stdout:
            return
        time.sleep(5)
    pytest.fail(f"the cluster of {path} did not reach {count} nodes in {timeout_s:.0f} s")


@pytest.fixture(scope="module")
def rehearsal(tmp_path_factory):
    missing = machines_missing()
    if missing:
        pytest.skip(f"the cluster rehearsal {missing}")
    folder = tmp_path_factory.mktemp("rehearsal")
    machines = Machines.create(folder)
    private = folder / "head-only"  # a folder the head has and the worker's own disk hides
    name = f"emoref-rehearsal-{machines.net}"  # the launcher keeps its state per cluster name
    try:
        head = machines.start("head")
        worker = machines.start("worker", private=(str(private),))
        for machine in (head, worker):
            reuse_environment(machine)
        path = cluster_file(machines, "head", ["worker"], name)
        start = time.monotonic()
        ok(launcher("up", "-y", "--no-config-cache", str(path)))
        workers_joined(path, 2)
        print(f"ray up to two nodes: {time.monotonic() - start:.0f} s")
        yield machines, path, private
    finally:
        machines.stop()  # every process of every machine, Ray's included
        for kind in ("state", "lock"):  # the launcher's record of the cluster, on this side
            Path(f"/tmp/ray/cluster-{name}.{kind}").unlink(missing_ok=True)


def finished_seeds(client, experiment: str, sweep_run: str) -> list:
    """The FINISHED seed runs under a sweep run's configuration runs."""
    configurations = client.search_runs([experiment], f"tags.`mlflow.parentRunId` = '{sweep_run}'")
    return [r for c in configurations for r in client.search_runs(
        [experiment], f"tags.`mlflow.parentRunId` = '{c.info.run_id}' and "
        "attributes.status = 'FINISHED'")]


def sweep_ledger(machines: Machines, name: str) -> list[list[str]]:
    log = machines.shared / "sweeps" / name / "seeds.log"
    return [line.split() for line in log.read_text().splitlines()] if log.exists() else []


def test_every_node_checks_its_own_view_of_the_data_then_a_sweep_runs_on_both(rehearsal):
    from mlflow.tracking import MlflowClient
    machines, path, private = rehearsal
    head = machines.machines["head"].address
    worker = machines.machines["worker"].address
    # The corpus and the feature cache in a folder only the head has: refused before training,
    # in one line naming the worker node and the paths, and nothing left of the sweep.
    refused = launcher("exec", str(path), f"{SMOKE} --name refused "
                       f"corpus.cache_dir={private / 'cache'}")
    assert refused.returncode != 0
    error = [line for line in refused.stdout.splitlines() + refused.stderr.splitlines()
             if line.startswith("error:")]
    assert len(error) == 1, refused.stdout[-3000:] + refused.stderr[-3000:]
    assert f"node {worker}" in error[0] and str(private / "cache") in error[0]
    assert "corpus.cache_dir" in error[0] and "/shared" in error[0]
    assert "the corpus" in error[0] and "corpus.root" in error[0]  # the corpus lives there too
    assert "on_bad_audio" not in error[0]  # skipping files is not the fix
    assert not (machines.shared / "sweeps" / "refused").exists()

    # As README's cluster section runs it, with the cluster file's defaults (the cache on
    # /shared, the head's MLflow server): the sweep completes, its seeds ran on both nodes, and
    # the server (store and artifacts on /shared) holds every run.
    start = time.monotonic()
    ok(launcher("exec", str(path), f"{SMOKE} --name shared"))
    print(f"smoke sweep on the cluster: {time.monotonic() - start:.0f} s")
    record = json.loads((machines.shared / "sweeps" / "shared" / "sweep.json").read_text())
    assert record["tracking_uri"] == f"http://{head}:5000"
    assert "corpus.cache_dir=/shared/cache" in record["base_config"]
    ledger = sweep_ledger(machines, "shared")
    assert len(ledger) == 4 and len({row[4] for row in ledger}) == 2  # 2 configs x 2 seeds
    client = MlflowClient(f"http://{head}:5000")
    experiment = client.get_experiment_by_name("ipr-synthetic").experiment_id
    seeds = client.search_runs([experiment], "tags.`emoref.kind` = 'seed'")
    assert len(seeds) == 4 and {r.data.tags["ray_node"] for r in seeds} == {r[4] for r in ledger}
    assert {r.info.status for r in seeds} == {"FINISHED"}
    assert (machines.shared / "mlflow" / "mlflow.db").is_file()
    # README's way to the UI: `ray attach -p 5000` forwards the head's port over SSH.
    with attached(path, 5000) as url:
        tunnel = MlflowClient(url)
        runs = tunnel.search_runs([experiment], "attributes.run_name = 'shared'")
        assert [r.data.tags["emoref.kind"] for r in runs] == ["sweep"]
        assert b"<!doctype html>" in urllib.request.urlopen(url, timeout=30).read()[:200].lower()


@contextlib.contextmanager
def attached(path: Path, port: int):
    """`ray attach <file> -p <port>` as a user types it (in a pseudo-terminal: it opens a shell
    on the head), yielding the forwarded address once it answers."""
    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", port)) == 0:
            pytest.skip(f"port {port} is taken here: ray attach -p {port} cannot forward it")
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_ADDRESS")}
    shell = subprocess.Popen(["script", "-qc", f"{RAY} attach {path} -p {port}", "/dev/null"],
                             cwd=REPO, env=env, stdin=subprocess.PIPE,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(url + "/health", timeout=5).read()
                break
            except OSError:
                assert shell.poll() is None and time.monotonic() < deadline, "no tunnel"
                time.sleep(1)
        yield url
    finally:
        os.killpg(shell.pid, signal.SIGTERM)
        shell.wait(timeout=30)


def test_the_runs_outlive_the_cluster_and_a_sweep_resumes_on_a_new_head(rehearsal):
    from mlflow.tracking import MlflowClient
    machines, path, _ = rehearsal
    # A sweep of 2 configurations x 3 seeds, interrupted by `ray down` once a seed has finished.
    command = f"{SMOKE} --name interrupted --seeds 3"
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_ADDRESS")}
    running = subprocess.Popen([RAY, "exec", str(path), command], cwd=REPO, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 600
        while not sweep_ledger(machines, "interrupted") and time.monotonic() < deadline:
            assert running.poll() is None, "the sweep ended before it could be interrupted"
            time.sleep(1)
        ok(launcher("down", "-y", str(path)))
    finally:
        running.kill()
        running.wait()
    before = {(row[0], row[2]) for row in sweep_ledger(machines, "interrupted")}
    assert 1 <= len(before) < 6

    # The head is lost with its disk; the store on /shared still holds every run.
    machines.lose("head")
    store = MlflowClient(f"sqlite:///{machines.shared / 'mlflow' / 'mlflow.db'}")
    experiment = store.get_experiment_by_name("ipr-synthetic").experiment_id
    sweeps = {r.info.run_name: r for r in store.search_runs(
        [experiment], "tags.`emoref.kind` = 'sweep'")}
    assert {"shared", "interrupted"} <= set(sweeps)
    assert len(finished_seeds(store, experiment, sweeps["shared"].info.run_id)) == 4

    # A new head at a new address: `ray up`, then --resume with the new server's URI.
    new = machines.start("head2")
    reuse_environment(new)
    config = yaml.safe_load(path.read_text())
    config["provider"]["head_ip"] = new.address
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    ok(launcher("up", "-y", "--no-config-cache", str(path)))
    workers_joined(path, 2)
    # (its preset, overrides and options come from its sweep.json)
    ok(launcher("exec", str(path), f"cd ~/emoref && .venv/bin/python -m runner.tune ipr "
                f"--resume --name interrupted --storage-path /shared/sweeps --quiet "
                f"--tracking-uri http://{new.address}:5000"))
    after = [(row[0], row[2]) for row in sweep_ledger(machines, "interrupted")]
    assert len(after) == len(set(after)) == 6 and before <= set(after)  # no finished seed rerun
    server = MlflowClient(f"http://{new.address}:5000")
    sweep_runs = server.search_runs([experiment], "tags.`emoref.kind` = 'sweep' and "
                                    "attributes.run_name = 'interrupted'")
    assert len(sweep_runs) == 1  # the resumed trials went under the same sweep run
    # Every seed recorded once as FINISHED, also one whose driver died between its last file and
    # its record (recorded on resume from its folder).
    seeds = finished_seeds(server, experiment, sweep_runs[0].info.run_id)
    assert sorted((r.data.tags["emoref.trial"], r.data.tags["seed"]) for r in seeds) == sorted(
        (trial, seed[len("seed"):]) for trial, seed in after)
    ok(launcher("down", "-y", str(path)))
