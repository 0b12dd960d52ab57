"""openSMILE front end: real openSMILE on tiny audio written here; features deterministic and
cached, cache keys, Ray-task extraction, standardisation from the training part only, bad input."""

import dataclasses
import warnings

import numpy as np
import pytest
import soundfile as sf
import torch

from emoref.config import ConfigError, build_config
from emoref.data import opensmile_features as osf
from emoref.data.corpora import load_manifest
from emoref.data.manifest import DataError
from emoref.data.splits import make_split
from emoref.methods import METHODS
from emoref.methods.common import SERModel, load_parts
from emoref.record import ListReporter


def csv_corpus(tmp_path, tone, n=24, seconds=0.6, extra=()):
    """A CSV corpus of n tones (two classes, four speakers) with agreement in three bands, so the
    ambiguity split has D1, D2 (with a dev part) and D3."""
    rows = ["path,label,speaker,agreement"]
    for i in range(n):
        label = ("anger", "sadness")[i % 2]
        path = tone(tmp_path / "audio" / f"u{i:02d}.wav", seconds=seconds + 0.05 * (i % 5),
                    freq=(180.0 if label == "anger" else 320.0) + 7 * i)
        agreement = (1.0, 0.95, 0.92, 0.85)[(i // 2) % 4]
        rows.append(f"{path},{label},s{i % 4},{agreement}")
    rows += list(extra)
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("\n".join(rows) + "\n")
    return manifest


def config_for(tmp_path, manifest, *more):
    return build_config("smoke", ["corpus.name=csv", f"corpus.root={manifest}",
                                  f"corpus.cache_dir={tmp_path / 'cache'}",
                                  "encoder.kind=opensmile", "encoder.views=2",
                                  "split.d1_min_agreement=1.0", "split.d2_min_agreement=0.9",
                                  "split.d3_min_agreement=0.8", "split.dev_fraction=0.25", *more])


@pytest.mark.parametrize("feature_set,level", sorted(osf.DIMS))
def test_dimensions_are_openSMILEs(feature_set, level):
    t = np.arange(8000) / 16000
    wave = (0.3 * np.sin(2 * np.pi * 200 * t)).astype(np.float32)
    values = osf.extract(osf.smile(feature_set, level), wave, 16000, "tone")
    expected = osf.DIMS[(feature_set, level)]
    if level == "functionals":
        assert values.shape == (expected,)
    else:  # 10 ms frames
        assert values.shape[1] == expected and 40 <= values.shape[0] <= 50


def test_features_are_deterministic_cached_and_read_back(tmp_path, tone, monkeypatch):
    config = config_for(tmp_path, csv_corpus(tmp_path, tone, n=8))
    manifest = load_manifest(config.corpus)
    job = osf.Extraction.of(config)
    assert osf.pending(manifest.utterances, job) == 8 * 3  # clean + 2 views
    assert osf.fill(manifest.utterances, job, use_ray=False, echo=False) == {}
    assert osf.pending(manifest.utterances, job) == 0
    first = osf.OpenSmileInputs(manifest.utterances, config)
    # Computing again from the audio gives the same numbers (seeded augmentation included).
    direct = osf.extract_items(job, [(u.path, u.id, 2) for u in manifest.utterances])
    assert all(np.array_equal(a, b) for a, b in zip(direct, first.values[2]))
    assert not np.array_equal(first.values[0][0], first.values[1][0])  # views differ
    # A second reader (another seed, trial or fold) extracts nothing.
    monkeypatch.setattr(osf, "extract_items", lambda *a: pytest.fail("extracted a cached value"))
    again = osf.OpenSmileInputs(manifest.utterances, config)
    assert all(np.array_equal(a, b) for a, b in zip(first.values[1], again.values[1]))
    x, mask = again.batch(np.array([0, 3]), np.array([0, 2]))
    assert mask is None and x.shape == (2, osf.DIMS[("eGeMAPSv02", "functionals")])


def test_cache_keys_name_everything_the_values_depend_on(tmp_path, monkeypatch):
    config = build_config("smoke", [f"corpus.cache_dir={tmp_path}", "encoder.kind=opensmile"])
    job = osf.Extraction.of(config)
    dirs = {job.store(0).dir, job.store(1).dir}
    others = [dataclasses.replace(job, feature_set="ComParE_2016"),
              dataclasses.replace(job, level="lld"),
              dataclasses.replace(job, sample_rate=8000)]
    dirs |= {other.store(0).dir for other in others}
    # Augmentation settings key the augmented views, not the clean one.
    louder = dataclasses.replace(job, augment=dataclasses.replace(job.augment, gain_p=1.0))
    assert louder.store(0).dir == job.store(0).dir
    dirs.add(louder.store(1).dir)
    assert len(dirs) == 6
    # A cache written by another openSMILE version is never read as this one.
    import opensmile
    monkeypatch.setattr(opensmile, "__version__", "0.0-other")
    assert job.store(0).dir not in dirs


def test_extraction_runs_as_ray_tasks_and_matches_in_process(tmp_path, tone):
    ray = pytest.importorskip("ray")
    config = config_for(tmp_path, csv_corpus(tmp_path, tone, n=6))
    manifest = load_manifest(config.corpus)
    local = dataclasses.replace(osf.Extraction.of(config), cache_dir=str(tmp_path / "local"))
    osf.fill(manifest.utterances, local, use_ray=False, echo=False)
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, address="local")
    try:
        job = osf.Extraction.of(config)
        assert osf.fill(manifest.utterances, job, use_ray=True, echo=False) == {}
    finally:
        if started:
            ray.shutdown()
    for view in range(3):
        a, b = osf.read(manifest.utterances, local, view), osf.read(manifest.utterances, job, view)
        assert all(np.array_equal(x, y) for x, y in zip(a, b))


def test_descriptor_frames_batch_with_a_mask(tmp_path, tone):
    config = config_for(tmp_path, csv_corpus(tmp_path, tone, n=4), "encoder.level=lld")
    manifest = load_manifest(config.corpus)
    inputs = osf.OpenSmileInputs(manifest.utterances, config)
    x, mask = inputs.batch(np.array([0, 1, 4 - 1]))
    lengths = [len(inputs.values[0][i]) for i in (0, 1, 3)]
    assert x.shape == (3, max(lengths), 25) and mask.sum(1).tolist() == lengths
    model = SERModel(config, 2).eval()
    alone = model(*inputs.batch(np.array([0])))[0]
    assert torch.allclose(alone[0], model(x, mask)[0][0], atol=1e-5)  # padding changes nothing


def test_standardisation_uses_the_training_part_only(tmp_path, tone):
    manifest_file = csv_corpus(tmp_path, tone)
    config = config_for(tmp_path, manifest_file)
    split = make_split(load_manifest(config.corpus), config.split)
    assert split.d3 and split.dev

    def statistics():
        model = SERModel(config, len(split.classes))
        load_parts(config, split, model)
        return model.trunk.standardize.mean.clone(), model.trunk.standardize.std.clone()

    before = statistics()
    # D3's and dev's audio change completely: the training statistics do not move.
    for u in split.d3 + split.dev:
        wave, sr = sf.read(u.path)
        sf.write(u.path, (np.random.default_rng(1).standard_normal(len(wave)) * 0.5).clip(-1, 1),
                 sr, subtype="PCM_16")
    after = statistics()
    assert torch.equal(before[0], after[0]) and torch.equal(before[1], after[1])
    # ... while a training utterance's audio does move them.
    u = split.d1[0]
    wave, sr = sf.read(u.path)
    sf.write(u.path, wave[::-1].copy() * 0.2, sr, subtype="PCM_16")
    assert not torch.equal(before[0], statistics()[0])


def test_a_file_too_short_for_openSMILE_is_named_or_skipped(tmp_path, tone):
    short = tone(tmp_path / "audio" / "short.wav", seconds=0.02)
    manifest_file = csv_corpus(tmp_path, tone, extra=[f"{short},anger,s0,1.0"])
    config = config_for(tmp_path, manifest_file)
    manifest = load_manifest(config.corpus)
    with pytest.raises(DataError, match="short.wav.*too short"):
        osf.prepare(manifest, [osf.Extraction.of(config)], echo=False)
    kept = osf.prepare(manifest, [osf.Extraction.of(config)], on_bad_audio="skip", echo=False)
    assert len(kept) == len(manifest) - 1
    assert any("short.wav" in line for line in kept.skipped)


def test_unknown_feature_set_or_level_names_the_key():
    with pytest.raises(ConfigError, match="encoder.feature_set.*eGeMAPSv02"):
        build_config("cpu", ["encoder.feature_set=GeMAPS"])
    with pytest.raises(ConfigError, match="encoder.level.*functionals"):
        build_config("cpu", ["encoder.level=frames"])
    with pytest.raises(ConfigError, match="reference.feature_set"):
        build_config("cpu", ["reference.feature_set=IS09"])


def test_reference_trains_on_d1_or_d1_and_d2_and_scores_d3(tmp_path, tone):
    config = config_for(tmp_path, csv_corpus(tmp_path, tone))
    split = make_split(load_manifest(config.corpus), config.split)
    plain = METHODS["reference"](config, split, ListReporter())
    again = METHODS["reference"](dataclasses.replace(config, seed=3), split, ListReporter())
    assert plain.selected == again.selected  # lbfgs: the seed changes nothing
    full = METHODS["reference_supervised"](config, split, ListReporter())
    for result in (plain, full):
        assert {"d3_wa", "d3_ua", "dev_ua", "agreement_model"} <= set(result.selected)
    assert full.selected["agreement_model"] == 1.0  # it saw D2's labels
    folds = build_config("smoke", [f"corpus.root={config.corpus.root}", "corpus.name=csv",
                                   f"corpus.cache_dir={config.corpus.cache_dir}", "split.kind=kfold",
                                   "split.folds=3"])
    kfold = make_split(load_manifest(folds.corpus), folds.split)
    cv = METHODS["reference"](folds, kfold, ListReporter())
    assert {"cv_wa", "cv_ua", "cv_f1"} <= set(cv.selected)
    assert sorted(r["id"] for r in cv.table) == sorted(u.id for f in kfold.folds for u in f.test)


def test_a_diverging_loss_names_the_epoch_and_term(tmp_path, tone, monkeypatch):
    from emoref.methods.common import Diverged
    config = config_for(tmp_path, csv_corpus(tmp_path, tone))
    split = make_split(load_manifest(config.corpus), config.split)
    real = osf.OpenSmileInputs.batch

    def poisoned(self, rows, views=0):  # features that overflow, as a diverged model's would
        x, mask = real(self, rows, views)
        return x * float("inf"), mask

    monkeypatch.setattr(osf.OpenSmileInputs, "batch", poisoned)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(Diverged, match="epoch 0: loss term ce_d1"):
            METHODS["ipr"](config, split, ListReporter())
