import dataclasses

import pytest

from emoref.config import (CORPUS_DEFAULTS, PRESETS, ConfigError, RunConfig, apply_overrides,
                           as_overrides, build_config, flatten, from_overrides)


def test_defaults_build_and_every_preset_loads():
    for preset in PRESETS:
        config = build_config(preset)
        assert isinstance(config, RunConfig)
    for corpus, overrides in CORPUS_DEFAULTS.items():
        root = [] if corpus == "synthetic" else [f"corpus.root=/data/{corpus}"]
        build_config("cpu", [f"corpus.name={corpus}", *root])


def test_overrides_parse_types():
    config = build_config("cpu", ["split.dev_fraction=0.2", "split.folds=5", "corpus.classes=a,b",
                                  "corpus.include_self_ratings=yes", "augment.gain_db=-3,3"])
    assert config.split.dev_fraction == 0.2 and config.split.folds == 5
    assert config.corpus.classes == ("a", "b")
    assert config.corpus.include_self_ratings is True
    assert config.augment.gain_db == (-3.0, 3.0)


def test_corpus_defaults_come_before_user_overrides():
    config = build_config("cpu", ["corpus.name=emodb", "corpus.root=/x"])
    assert (config.split.d1_min_agreement, config.split.d2_min_agreement,
            config.split.d3_min_agreement) == (1.0, 0.9, 0.8)
    config = build_config("cpu", ["corpus.name=emodb", "corpus.root=/x",
                                  "split.d2_min_agreement=0.95"])
    assert config.split.d2_min_agreement == 0.95
    iemocap = build_config("cpu", ["corpus.name=iemocap", "corpus.root=/x"])
    assert iemocap.corpus.merge == ("excitement:happiness",)
    assert (iemocap.split.d1_size, iemocap.split.d2_size, iemocap.split.d3_size) == (1710, 3421, 400)


@pytest.mark.parametrize("override, names", [
    ("corpus.rot=/x", "corpus.rot"),  # unknown key, with a suggestion
    ("splt.folds=3", "splt"),
    ("split.folds=three", "split.folds"),  # wrong type
    ("split.dev_fraction=1.5", "split.dev_fraction"),  # out of range
    ("corpus.on_bad_audio=ignore", "corpus.on_bad_audio"),  # not an allowed value
    ("corpus.include_self_ratings=maybe", "corpus.include_self_ratings"),
    ("split=3", "split"),  # a section is not a value
    ("split.d3_min_agreement=0.95", "split.d2_min_agreement"),  # inconsistent thresholds
    ("augment.noise_p=-0.1", "augment.noise_p"),
    ("corpus.synthetic.n_utterances=2", "corpus.synthetic.n_utterances"),
    ("nonsense", "key=value"),
    ("epr.protocol=crossfit", "epr.protocol"),
    ("epr.inner_folds=1", "epr.inner_folds"),
    ("epr.monitor=f1", "epr.monitor"),
    ("epr.forest_fit=own", "epr.forest_fit"),
    ("epr.statistics=mean,mode", "epr.statistics"),
])
def test_bad_overrides_name_the_key(override, names):
    with pytest.raises(ConfigError) as info:
        build_config("cpu", [override])
    assert names in str(info.value)


def test_did_you_mean():
    with pytest.raises(ConfigError, match="did you mean 'corpus.root'"):
        build_config("cpu", ["corpus.rot=/x"])


def test_real_corpus_needs_a_root():
    with pytest.raises(ConfigError, match="corpus.root"):
        build_config("cpu", ["corpus.name=emodb"])


def test_unknown_preset():
    with pytest.raises(ConfigError, match="preset"):
        build_config("fast")


def test_config_is_frozen_and_flattens():
    config = build_config()
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.seed = 3  # type: ignore[misc]
    flat = flatten(config)
    assert flat["corpus.synthetic.n_utterances"] == config.corpus.synthetic.n_utterances
    assert all("." in key or key in ("seed", "workers", "gpu") for key in flat)
    assert apply_overrides(config, []) is config


@pytest.mark.parametrize("preset", sorted(PRESETS))
@pytest.mark.parametrize("corpus", ["synthetic", "emodb", "iemocap"])
def test_config_round_trips_through_key_value_strings(preset, corpus):
    """Checkpoints store the config as key=value lines; reading them back gives the same config."""
    extra = [] if corpus == "synthetic" else [f"corpus.root=/data/{corpus}"]
    config = build_config(preset, [f"corpus.name={corpus}", *extra, "ipr.gamma=0.95"])
    assert from_overrides(as_overrides(config)) == config


def test_later_overrides_win_when_rebuilding():
    config = build_config("smoke")
    assert from_overrides([*as_overrides(config), "seed=7"]).seed == 7


def test_the_paper_preset_trains_epr_as_section_4_1_says():
    """Adam 1e-3, x0.8 every 2 epochs, batch 128, at most 20 epochs, patience 3; the paper's
    protocol; VGG-E at full width on every 10 ms segment."""
    e = build_config("paper", method="epr").epr
    assert (e.lr, e.lr_decay, e.lr_decay_epochs, e.batch_size, e.max_epochs, e.patience) == \
        (1e-3, 0.8, 2, 128, 20, 3)
    assert (e.protocol, e.vgg, e.width) == ("paper", "E", 1.0)
    assert build_config("paper", method="epr").audio.segment_hop == 1
