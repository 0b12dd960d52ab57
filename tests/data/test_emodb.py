"""The real EmoDB release (read-only, outside the repository): skips cleanly where absent."""

import pytest

from emoref.config import build_config
from emoref.data.audio import LogMel, load_audio, segment_count
from emoref.data.corpora import load_manifest
from emoref.data.splits import make_split

pytestmark = pytest.mark.corpus


def emodb(root, *overrides):
    return build_config("cpu", ["corpus.name=emodb", f"corpus.root={root}", *overrides])


def test_emodb_loads_535_utterances_10_speakers_7_emotions(emodb_root):
    manifest = load_manifest(emodb(emodb_root).corpus)
    assert len(manifest) == 535
    assert len(manifest.speakers()) == 10
    assert manifest.class_counts() == {"anger": 127, "boredom": 81, "disgust": 46, "fear": 69,
                                       "happiness": 71, "neutral": 79, "sadness": 62}


def test_emodb_ambiguity_preset_counts(emodb_root):
    config = emodb(emodb_root)
    split = make_split(load_manifest(config.corpus), config.split)
    # D1 = 100% recognition; D2 = [90%, 100%) with 10% carved as dev; D3 = [80%, 90%).
    assert (len(split.d1), len(split.d2) + len(split.dev), len(split.d3)) == (184, 247, 104)
    assert (len(split.d2), len(split.dev), len(split.excluded)) == (224, 23, 0)
    assert split.hash == "a46cb9bf7677c316"


def test_emodb_speaker_folds(emodb_root):
    config = emodb(emodb_root, "split.kind=kfold", "split.fold_by=speaker")
    split = make_split(load_manifest(config.corpus), config.split)
    assert len(split.folds) == 10 and sum(len(f.test) for f in split.folds) == 535


def test_emodb_segment_count_matches_the_epr_paper(emodb_root):
    config = emodb(emodb_root)
    manifest = load_manifest(config.corpus)
    # 32-frame segments with a 1-frame (10 ms) hop over uncentred 25 ms frames: the EPR paper
    # reports 131,053 Emo-DB segments.
    total = 0
    for u in manifest.utterances:
        samples = len(load_audio(u.path, 16000))
        total += segment_count(1 + (samples - 400) // 160, 32, 1)
    assert total == 131053
    first = load_audio(manifest.utterances[0].path, 16000)
    assert LogMel(config.audio)(__import__("torch").from_numpy(first)).shape[1] == \
        1 + (len(first) - 400) // 160
