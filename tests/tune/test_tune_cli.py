"""End to end: the real `python -m runner.tune` in subprocesses, each with its own local Ray, on
the smoke corpus: a whole sweep with its report, a rerun of its best configuration, and a sweep
whose driver is killed mid-way and resumed."""

import csv
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from pathlib import Path

import pytest

pytest.importorskip("ray")

REPO = Path(__file__).resolve().parents[2]
# One thread per process: the sweep's trials compute with the one CPU Tune gives each, so the
# rerun below does the same arithmetic in the same order.
ENV = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}


def cli(module, *args, timeout=900):
    return subprocess.run([sys.executable, "-m", module, *map(str, args)], cwd=REPO, env=ENV,
                          capture_output=True, text=True, timeout=timeout)


def store(root: Path) -> str:
    return f"sqlite:///{root / 'mlflow.db'}"


def runs_of(uri: str, experiment: str = "ipr-synthetic") -> list:
    from mlflow.tracking import MlflowClient
    client = MlflowClient(uri)
    found = client.get_experiment_by_name(experiment)
    return client.search_runs([found.experiment_id], max_results=5000) if found else []


def ledger(folder: Path) -> list[tuple[str, str, str]]:
    """(trial, method, seed) of every seed that finished, one line each time one did."""
    path = folder / "seeds.log"
    return [tuple(line.split()[:3]) for line in path.read_text().splitlines()] if path.exists() else []


@pytest.fixture(scope="module")
def sweep(tmp_path_factory, smoke_cache):
    root = tmp_path_factory.mktemp("tune")
    done = cli("runner.tune", "ipr", "--smoke-test", "--seeds", 3, "--storage-path", root / "sweeps",
               "--name", "smoke", "--quiet", "--tracking-uri", store(root),
               f"corpus.cache_dir={smoke_cache}")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return root, root / "sweeps" / "smoke", done.stdout


def test_smoke_sweep_finishes_every_trial_with_the_asked_seeds(sweep):
    _, folder, stdout = sweep
    record = json.loads((folder / "sweep.json").read_text())
    assert record["seeds"] == 3 and record["num_samples"] == 2
    assert "ipr.gamma" in record["space"] and "train.warmup_epochs" not in record["space"]
    trials = sorted(p for p in (folder / "trials").iterdir())
    assert len(trials) == 2
    for trial in trials:
        seeds = sorted(p.name for p in trial.glob("seed*") if (p / "config.txt").exists())
        assert seeds == ["seed0", "seed1", "seed2"], trial
        params = json.loads((trial / "params.json").read_text())
        assert set(params) == set(record["space"])
    for baseline in ("baseline", "baseline_star", "supervised"):
        assert len(list((folder / "baselines" / baseline).glob("seed*/config.txt"))) == 3
    runs = ledger(folder)
    assert len(runs) == len(set(runs)) == 2 * 3 + 3 * 3  # every seed trained exactly once
    # Trials without DDP workers train in their own process: no Ray Train run was ever started.
    assert not (folder / "train").exists()
    # The first configuration is the unsearched default (the cpu preset's IPR values).
    first = json.loads((trials[0] / "params.json").read_text())
    starts = [json.loads((t / "params.json").read_text()) for t in trials]
    assert any(p["ipr.gamma"] == 0.99 and p["ipr.mu"] == 0.2 for p in starts), first


def test_report_has_top_configs_paired_tests_and_table3(sweep):
    _, folder, stdout = sweep
    report = (folder / "report.md").read_text()
    assert report in stdout  # printed at the end as well
    assert "## Top configurations" in report and "dev UA" in report and "D3 UA" in report
    assert "## Paired t-tests over seeds" in report
    assert "| baseline* | D1 and unlabelled D2 |" in report and "| ipr |" in report
    # The classical reference rows: their own table, the paired tests and Table 3's layout.
    assert "## Classical reference" in report
    assert "| reference | D1 (openSMILE + LR) |" in report
    assert "| reference_supervised | D3 UA |" in report
    for name in ("reference", "reference_supervised"):
        assert len(list((folder / "baselines" / name).glob("seed*/config.txt"))) == 3
    rows = list(csv.DictReader((folder / "report.csv").open()))
    assert len(rows) == 2 and all(r["seeds"] == "3" for r in rows)
    # Ranked by the objective (mean dev UA over seeds), never by D3.
    assert float(rows[0]["dev_mean"]) >= float(rows[1]["dev_mean"])
    # runner.report rebuilds the same report from disk.
    (folder / "report.md").unlink()
    again = cli("runner.report", folder)
    assert again.returncode == 0, again.stderr
    assert (folder / "report.md").read_text() == report


def test_best_configuration_reruns_with_runner_train(sweep):
    root, folder, _ = sweep
    best_text = (folder / "best.txt").read_text()
    trial = best_text.split("(trial ", 1)[1].split(")", 1)[0]
    done = cli("runner.train", "ipr", "--config", folder / "best.txt", "--seeds", 1, "--quiet",
               "--out", root / "rerun")
    assert done.returncode == 0, done.stderr[-3000:]
    sweep_rows = list(csv.DictReader((folder / "trials" / trial / "seed0" / "epochs.csv").open()))
    rerun_rows = list(csv.DictReader((root / "rerun" / "ipr" / "seed0" / "epochs.csv").open()))
    # Bit for bit: the trial and the rerun compute with the same threads (dist.cpus_per_worker,
    # in best.txt), so even the order of floating-point sums is the same.
    assert "dist.cpus_per_worker=1.0" in best_text.splitlines()
    assert len(rerun_rows) == len(sweep_rows)
    for a, b in zip(sweep_rows, rerun_rows):
        assert [k for k, v in a.items() if v] == [k for k, v in b.items() if v]
        for key in ("loss", "dev_ua", "d3_wa", "d3_ua", "agreement_prototype"):
            assert b[key] == a[key], key


def live_steps(uri: str, folder: Path) -> list[list[int]]:
    """The loss steps in the store of every seed run that is RUNNING while its seed folder has no
    config.txt yet (written when the seed ends)."""
    from mlflow.tracking import MlflowClient
    try:
        running = [r for r in runs_of(uri) if r.data.tags.get("emoref.kind") == "seed"
                   and r.info.status == "RUNNING"]
    except Exception:  # noqa: BLE001 - the store may not exist yet
        return []
    seen = []
    for run in running:
        steps = [m.step for m in MlflowClient(uri).get_metric_history(run.info.run_id, "loss")]
        seed = folder / "trials" / run.data.tags["emoref.trial"] / f"seed{run.data.tags['seed']}"
        if steps and not (seed / "config.txt").exists():
            seen.append(sorted(steps))
    return seen


def test_killed_sweep_resumes_without_rerunning_finished_trials(tmp_path, smoke_cache):
    """One in-process sweep, killed mid-way and resumed. While it trains, each seed's per-epoch
    curves reach MLflow as the epochs end, not when the seed does."""
    # Enough epochs that the store is read while a seed is part-way through them: at 4, a fast
    # CPU ended every seed's epochs between two reads (each seed's curve was seen only whole).
    epochs = 8
    args = ["ipr", "--smoke-test", "--num-samples", 3, "--max-concurrent", 1, "--no-baselines",
            "--storage-path", tmp_path / "sweeps", "--name", "killed", "--quiet",
            "--tracking-uri", store(tmp_path), f"train.epochs={epochs}",
            f"corpus.cache_dir={smoke_cache}"]
    folder = tmp_path / "sweeps" / "killed"
    driver = subprocess.Popen([sys.executable, "-m", "runner.tune", *map(str, args)], cwd=REPO,
                              env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline, seen = time.monotonic() + 600, []
    while len(ledger(folder)) < 3 and driver.poll() is None and time.monotonic() < deadline:
        seen += live_steps(store(tmp_path), folder)
        time.sleep(0.2)
    assert driver.poll() is None, "the sweep ended before it could be killed"
    driver.send_signal(signal.SIGKILL)  # the driver dies mid-sweep: no clean-up of any kind
    driver.wait()
    # A seed's first epochs were in the store while it was still training.
    assert seen, "no per-epoch metric reached MLflow before its seed finished"
    assert all(steps == list(range(len(steps))) for steps in seen), seen
    assert min(len(steps) for steps in seen) < epochs, seen
    before = ledger(folder)
    finished = {t for t, _, _ in before if sum(1 for r in before if r[0] == t) == 2}
    # Tune's last snapshot of its state knows every trial that finished a seed (runner.tune's
    # snapshot period): none is forgotten by the resume, started again under a new id.
    snapshot = max((folder / "tune").glob("experiment_state-*.json"),
                   key=lambda p: p.stat().st_mtime)
    known = snapshot.read_text()
    assert all(trial in known for trial, _, _ in before), (before, snapshot.name)
    assert 1 <= len(finished) < 3
    done = cli("runner.tune", *args, "--resume")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    after = ledger(folder)
    assert after[:len(before)] == before
    counts = Counter(after)
    assert set(counts.values()) == {1}  # no seed trained twice, finished trials not rerun
    assert not {t for t, _, _ in after[len(before):]} & finished
    trials = {t for t, _, _ in after}
    assert len(trials) == 3 and len(after) == 3 * 2  # the asked total, each with its seeds
    assert len(list((folder / "trials").iterdir())) == 3
    assert (folder / "report.md").exists()
    # MLflow: one sweep run, FINISHED, reopened by the resume; the runs the killed driver left
    # RUNNING are KILLED; every finished seed has a FINISHED seed run, holding every epoch's
    # loss once (logged live, not again at the end).
    from mlflow.tracking import MlflowClient
    runs = runs_of(store(tmp_path))
    assert not [r for r in runs if r.info.status == "RUNNING"]
    (sweep_run,) = [r for r in runs if r.data.tags.get("emoref.kind") == "sweep"]
    assert sweep_run.info.status == "FINISHED"
    seeds = [r for r in runs if r.data.tags.get("emoref.kind") == "seed"
             and r.info.status == "FINISHED"]
    assert len(seeds) == 6
    for seed_run in seeds:
        history = MlflowClient(store(tmp_path)).get_metric_history(seed_run.info.run_id, "loss")
        assert sorted(m.step for m in history) == list(range(epochs))


@pytest.fixture(scope="module")
def side_sweeps(tmp_path_factory, smoke_cache, side_by_side):
    """Three small sweeps that share nothing, run side by side: one whose trials train on Ray
    Train workers, one whose only trial raises, one under ASHA with a diverging configuration.
    Each spends much of its time waiting (process, Ray and Tune start-up, Tune's polling), so
    together they take less than one after the other. Each starts its own Ray instance
    (RAY_ADDRESS=local: none joins another's). {name: (exit code, stdout, stderr, its folder)}."""
    roots = {name: tmp_path_factory.mktemp(name) for name in ("ddp", "raises", "diverge")}
    common = ["--smoke-test", "--no-baselines", "--quiet", f"corpus.cache_dir={smoke_cache}"]
    # A checkpoint folder that passes every check before Ray (its files are there) but whose
    # weights are corrupt: the trial raises when it loads them.
    from transformers import Wav2Vec2Config
    from emoref.models.encoders import WAV2VEC2_ARCHITECTURES
    broken = roots["raises"] / "broken-checkpoint"
    Wav2Vec2Config(**WAV2VEC2_ARCHITECTURES["tiny"]).save_pretrained(broken)
    (broken / "model.safetensors").write_bytes(b"not a checkpoint")
    # tau = 1e-40 diverges (the ASHA test's docstring says how).
    space = roots["diverge"] / "space.yaml"
    space.write_text("ipr:\n  ipr.tau: {choice: [0.07, 1.0e-40]}\n"
                     "  ipr.gamma: {uniform: [0.9, 0.999]}\n")
    extra = {
        "ddp": ["--workers-per-trial", 1, "--cpus-per-trial", 0.5, "--num-samples", 1,
                "--seeds", 1, "--name", "ddp"],
        # gpu=false: a pretrained encoder fine-tuned on the CPU, asked for (tiny here)
        "raises": ["--num-samples", 1, "--seeds", 1, "encoder.kind=wav2vec2",
                   "encoder.pretrained=true", f"encoder.model={broken}", "gpu=false"],
        "diverge": ["--scheduler", "asha", "--num-samples", 4, "--seeds", 2, "--space", space,
                    "--name", "diverge"]}
    commands = {name: ["-m", "runner.tune", "ipr", *common, "--storage-path", root / "sweeps",
                       "--tracking-uri", store(root), *extra[name]] for name, root in roots.items()}
    done = side_by_side(commands, roots, {**ENV, "RAY_ADDRESS": "local"})
    return {name: (*result, roots[name]) for name, result in done.items()}


def test_trials_with_workers_train_each_seed_on_ray_train(side_sweeps):
    code, stdout, stderr, tmp_path = side_sweeps["ddp"]
    assert code == 0, stdout[-3000:] + stderr[-3000:]
    folder = tmp_path / "sweeps" / "ddp"
    (trial,) = [p.name for p in (folder / "trials").iterdir()]
    # The seed ran as a TorchTrainer named after the trial (no timestamp: a retry resumes it),
    # checkpointing every epoch under the sweep's train/ folder.
    (run,) = list((folder / "train").glob(f"{trial}-ipr-seed0-*"))
    assert list(run.glob("checkpoint_*"))
    epochs = list(csv.DictReader((folder / "trials" / trial / "seed0" / "epochs.csv").open()))
    assert [r["attempt"] for r in epochs] == ["0.0"] * 3
    # Rank 0 logged each epoch to the seed's MLflow run as it trained (once each).
    from mlflow.tracking import MlflowClient
    (seed_run,) = [r for r in runs_of(store(tmp_path)) if r.data.tags.get("emoref.kind") == "seed"]
    history = MlflowClient(store(tmp_path)).get_metric_history(seed_run.info.run_id, "attempt")
    assert sorted(m.step for m in history) == [0, 1, 2]


def test_mlflow_holds_the_sweep_its_configurations_and_their_seeds(sweep):
    from mlflow.tracking import MlflowClient
    root, folder, _ = sweep
    client = MlflowClient(store(root))
    runs = runs_of(store(root))
    kinds = {}
    for run in runs:
        kinds.setdefault(run.data.tags.get("emoref.kind"), []).append(run)
    assert all(r.info.status == "FINISHED" for r in runs)
    # The UI opens it on its runs table, not on the LLM-tracing overview.
    experiment = client.get_experiment(runs[0].info.experiment_id)
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    (sweep_run,) = kinds["sweep"]
    record = json.loads((folder / "sweep.json").read_text())
    assert record["sweep_run"] == sweep_run.info.run_id
    assert sweep_run.data.params["seeds"] == "3" and "space.ipr.gamma" in sweep_run.data.params
    assert {a.path for a in client.list_artifacts(sweep_run.info.run_id)} >= {
        "report.md", "report.csv", "best.txt"}
    assert "best.test_ua.mean" in sweep_run.data.metrics
    assert "reference.test_ua.mean" in sweep_run.data.metrics
    assert sorted(r.data.tags["emoref.method"] for r in kinds["reference"]) == [
        "reference", "reference_supervised"]
    configs = kinds["configuration"]
    assert sorted(r.data.tags["emoref.method"] for r in configs) == [
        "baseline", "baseline_star", "ipr", "ipr", "supervised"]
    assert {r.data.tags["mlflow.parentRunId"] for r in configs} == {sweep_run.info.run_id}
    for config_run in configs:
        children = [r for r in kinds["seed"]
                    if r.data.tags["mlflow.parentRunId"] == config_run.info.run_id]
        assert sorted(r.data.tags["seed"] for r in children) == ["0", "1", "2"]
        assert config_run.data.metrics["seeds"] == 3
        mean = config_run.data.metrics["selected.d3_ua.mean"]
        values = [float(r.data.metrics["d3_ua"]) for r in children]  # last epoch's, for range
        assert 0.0 <= mean <= 1.0 and values
        # Every configuration run carries the classical reference rows beside its own numbers.
        assert 0.0 <= config_run.data.metrics["reference.test_ua.mean"] <= 1.0
        assert "reference_supervised.test_wa.mean" in config_run.data.metrics
        figures = {a.path for a in client.list_artifacts(config_run.info.run_id, "figures")}
        assert {"figures/agreement_mean.png", "figures/d3_confusion_sum.png"} <= figures
        if config_run.data.tags["emoref.method"] == "ipr":  # only IPR has prototypes (Fig. 2)
            assert "figures/prototype_similarity_mean.png" in figures
    ipr_seed = next(r for r in kinds["seed"] if r.data.tags["emoref.method"] == "ipr")
    # Resolved config as params, provenance as tags, per-epoch curves, files.
    assert ipr_seed.data.params["ipr.gamma"] and ipr_seed.data.params["corpus.name"] == "synthetic"
    assert ipr_seed.data.tags["split_hash"] == record["split_hash"]
    assert ipr_seed.data.tags["git_sha"] == record["git_sha"]
    assert "D1" in ipr_seed.data.tags["corpus_summary"]
    history = client.get_metric_history(ipr_seed.info.run_id, "agreement_prototype")
    assert sorted(m.step for m in history) == [1, 2]  # after the one warm-up epoch
    assert len(client.get_metric_history(ipr_seed.info.run_id, "agreement_model")) == 3
    files = {a.path for a in client.list_artifacts(ipr_seed.info.run_id)}
    assert {"table.csv", "epochs.csv", "config.txt", "checkpoint.pt", "figures"} <= files
    figures = {a.path for a in client.list_artifacts(ipr_seed.info.run_id, "figures")}
    assert {"figures/agreement.png", "figures/d3_confusion.png",
            "figures/prototype_similarity_curves.png"} <= figures
    assert len(client.get_metric_history(ipr_seed.info.run_id,
                                         "similarity.anger.happiness")) == 2
    soft = client.download_artifacts(ipr_seed.info.run_id, "table.csv", str(root / "dl"))
    assert "soft_" in Path(soft).read_text().splitlines()[0]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def browser():
    """Headless Debian Chromium through its own chromedriver (installed by tests/install-system.sh
    from `make test`); skips with the reason where there is none."""
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
    from selenium.webdriver.chrome.service import Service
    binary, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (binary and driver):
        pytest.skip("no chromium/chromedriver on PATH (tests/install-system.sh installs them)")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                 "--window-size=1600,1000"):
        options.add_argument(flag)
    chrome = webdriver.Chrome(service=Service(driver), options=options)
    chrome.set_page_load_timeout(120)
    yield chrome
    chrome.quit()


@pytest.fixture(scope="module")
def mlflow_ui(sweep):
    """`mlflow server` on 127.0.0.1 over the smoke sweep's store; its base URL."""
    root, _, _ = sweep
    port = free_port()
    log = (root / "mlflow-server.log").open("w")
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", store(root),
         "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        cwd=root, env=ENV, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    # A deadline, not a count of tries (each try may wait 2 s): beside two other trainings on
    # the same two cores the server's start-up took over 180 s.
    deadline = time.monotonic() + 300
    try:
        while True:
            try:
                urllib.request.urlopen(f"{base}/health", timeout=2)
                break
            except OSError:
                assert server.poll() is None, (root / "mlflow-server.log").read_text()[-3000:]
                if time.monotonic() > deadline:
                    pytest.fail("mlflow server did not answer /health within 300 s")
                time.sleep(1)
        yield base
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=60)
        log.close()


def test_mlflow_ui_shows_the_sweep_configurations_seeds_and_curves(sweep, mlflow_ui, browser,
                                                                     capsys):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
    root, _, _ = sweep
    runs = runs_of(store(root))
    experiment = runs[0].info.experiment_id
    configs = [r for r in runs if r.data.tags["emoref.kind"] == "configuration"]
    ipr = next(r for r in configs if r.data.tags["emoref.method"] == "ipr")
    seeds = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == ipr.info.run_id]
    wait = WebDriverWait(browser, 90)

    def shown(text: str):
        return wait.until(lambda b: b.find_element(
            By.XPATH, f"//a[.//span[normalize-space(text())='{text}']]"), f"{text!r} not shown")

    def expand(name: str) -> None:  # the +/- button in the run's name cell of the runs table
        row = shown(name).find_element(By.XPATH, "./ancestor::div[contains(@class,'ag-cell')][1]")
        browser.execute_script("arguments[0].click()", row.find_element(By.TAG_NAME, "button"))

    shots = root / "mlflow-ui"
    shots.mkdir(exist_ok=True)
    # The experiment's runs table: the sweep, then (expanded) its configurations, then the
    # seeds of an IPR configuration.
    browser.get(f"{mlflow_ui}/#/experiments/{experiment}/runs")
    expand("smoke")
    for config_run in configs:
        shown(config_run.info.run_name)
    expand(ipr.info.run_name)
    for seed_run in seeds:
        shown(seed_run.info.run_name)
    browser.save_screenshot(str(shots / "runs.png"))
    # An IPR seed's agreement curves (Fig. 3), drawn by the browser from the served artifact.
    browser.get(f"{mlflow_ui}/#/experiments/{experiment}/runs/{seeds[0].info.run_id}"
                "/artifacts/figures/agreement.png")
    image = wait.until(lambda b: next(
        (i for i in b.find_elements(By.TAG_NAME, "img")
         if b.execute_script("return arguments[0].complete && arguments[0].naturalWidth", i)
         >= 500), None), "the agreement figure was not drawn")
    assert "figures/agreement.png" in browser.find_element(By.TAG_NAME, "body").text
    assert image.size["width"] > 100
    browser.save_screenshot(str(shots / "agreement.png"))
    with capsys.disabled():
        print(f"\nMLflow UI screenshots: {shots / 'runs.png'} {shots / 'agreement.png'}")


def test_a_trial_that_raises_leaves_its_runs_failed_not_running(side_sweeps):
    code, stdout, stderr, tmp_path = side_sweeps["raises"]
    assert code == 1, stderr[-3000:]
    assert "no configuration has a finished seed" in stderr
    runs = runs_of(store(tmp_path))
    assert {r.data.tags.get("emoref.kind") for r in runs} == {"sweep", "configuration", "seed",
                                                               "reference"}
    # The classical reference rows were computed before the first trial; everything else failed.
    learned = [r for r in runs if r.data.tags["emoref.kind"] != "reference"]
    assert all(r.info.status == "FAILED" for r in learned), [(r.info.run_name, r.info.status)
                                                             for r in learned]
    seed_run = next(r for r in runs if r.data.tags["emoref.kind"] == "seed")
    assert "SafetensorError: Error while deserializing" in seed_run.data.tags["error"]  # its summary


def test_under_asha_a_diverging_configuration_fails_alone_and_the_sweep_goes_on(side_sweeps):
    """One sweep, two properties. tau = 1e-40 makes Eq. 5's similarities / tau overflow float32:
    the contrastive term is NaN from the first refinement step. That configuration is recorded as
    failed, Optuna is told the worst score, and the others go on. ASHA ends a trial inside its
    report (a stop, or max_t reached after the last seed): those configurations' records must
    say FINISHED, or KILLED for a stopped one, never FAILED."""
    code, stdout, stderr, tmp_path = side_sweeps["diverge"]
    assert code == 0, stdout[-3000:] + stderr[-3000:]
    folder = tmp_path / "sweeps" / "diverge"
    assert json.loads((folder / "sweep.json").read_text())["scheduler"] == "asha"
    failed = sorted(folder.glob("trials/*/failed.txt"))
    finished = sorted(folder.glob("trials/*/seed0/config.txt"))
    assert failed and finished, "expected both a diverged and a finished configuration"
    assert "loss term contrastive" in failed[0].read_text()
    for path in failed:
        assert json.loads((path.parent / "params.json").read_text())["ipr.tau"] < 1e-30
    assert "configuration(s) failed" in (folder / "report.md").read_text()
    runs = runs_of(store(tmp_path))
    configs = [r for r in runs if r.data.tags["emoref.kind"] == "configuration"]
    statuses = {r.data.tags["emoref.trial"]: r.info.status for r in configs}
    assert len(statuses) == 4 and {statuses[p.parent.name] for p in failed} == {"FAILED"}
    others = {t: s for t, s in statuses.items() if t not in {p.parent.name for p in failed}}
    assert others and set(others.values()) <= {"FINISHED", "KILLED"}, statuses
    assert {statuses[p.parents[1].name] for p in finished} <= {"FINISHED", "KILLED"}
    reasons = [r.data.tags.get("error", "") for r in configs if r.info.status == "FAILED"]
    assert all("Diverged" in reason and "contrastive" in reason for reason in reasons), reasons
    (sweep_run,) = [r for r in runs if r.data.tags["emoref.kind"] == "sweep"]
    assert sweep_run.info.status == "FINISHED"
    # Optuna was told the worst score for it (Tune's record of the trial's last report).
    results = [json.loads(line) for path in (folder / "tune").glob("*/result.json")
               for line in path.read_text().splitlines() if line.strip()]
    assert any(r.get("failed") == 1.0 and r["objective"] == -1.0 for r in results)
