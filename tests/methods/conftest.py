"""The smoke corpus and its ambiguity split, shared by the IPR-family tests (read-only)."""

import pytest

from emoref.config import build_config
from emoref.data.corpora import load_manifest
from emoref.data.splits import make_split


@pytest.fixture(scope="session")
def smoke(smoke_cache):
    config = build_config("smoke", [f"corpus.cache_dir={smoke_cache}"])
    return config, make_split(load_manifest(config.corpus), config.split)
