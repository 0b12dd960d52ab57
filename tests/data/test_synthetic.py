"""The built-in corpus: byte-identical per seed, blended emotions, a meaningful ambiguity split."""

import hashlib
import time

from emoref.config import SyntheticConfig, build_config
from emoref.data.corpora import load_manifest
from emoref.data.splits import ambiguity_split
from emoref.data.synthetic import corpus_key, generate

SMALL = SyntheticConfig(n_utterances=24, n_speakers=4, max_duration=1.2)


def digest(folder) -> str:
    h = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            h.update(path.name.encode() + path.read_bytes())
    return h.hexdigest()


def test_byte_identical_for_the_same_seed(tmp_path):
    generate(SMALL, tmp_path / "a")
    generate(SMALL, tmp_path / "b")
    generate(SyntheticConfig(n_utterances=24, n_speakers=4, max_duration=1.2, seed=1), tmp_path / "c")
    assert digest(tmp_path / "a") == digest(tmp_path / "b")
    assert digest(tmp_path / "a") != digest(tmp_path / "c")
    assert corpus_key(SMALL) != corpus_key(SyntheticConfig())


def test_default_corpus_loads_and_splits(cache_dir):
    config = build_config("cpu", [f"corpus.cache_dir={cache_dir}"])
    start = time.perf_counter()
    manifest = load_manifest(config.corpus)
    print(f"default synthetic corpus: {len(manifest)} utterances in "
          f"{time.perf_counter() - start:.1f} s")
    assert len(manifest) == 480 and manifest.classes == ("anger", "happiness", "sadness", "neutral")
    assert len(manifest.speakers()) == 8
    agreements = {u.agreement for u in manifest.utterances}
    assert len(agreements) >= 5  # raters disagree to varying degrees
    split = ambiguity_split(manifest, config.split)
    sizes = {name: len(part) for name, part in split.parts().items()}
    assert sizes["d1"] > 80 and sizes["d2"] > 150 and sizes["d3"] > 30, sizes
    # Blends are what makes D3 ambiguous: its utterances' primary emotion weight is lower.
    def primary_weight(u):
        mixture = [float(w) for w in dict(u.extra)["mixture"].split(",")]
        return max(mixture)
    mean = lambda part: sum(primary_weight(u) for u in part) / len(part)
    assert mean(split.d1) > mean(split.d2) > mean(split.d3)
    again = load_manifest(config.corpus)  # second load reads the cache
    assert again == manifest
