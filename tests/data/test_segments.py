"""The segment bank gathers exactly the segments `segments()` cuts, without storing copies."""

import numpy as np
import pytest
import torch

from emoref.config import AudioConfig
from emoref.data.audio import LogMel, segment_count, segments
from emoref.data.segments import build_bank


@pytest.mark.parametrize("hop", [1, 10])
def test_bank_matches_per_utterance_segments(hop):
    audio = AudioConfig(segment_hop=hop)
    rng = np.random.default_rng(0)
    waves = [rng.standard_normal(n).astype(np.float32) * 0.1 for n in (16000, 3000, 7919)]
    bank = build_bank(waves, audio)
    logmel = LogMel(audio)
    for position, wave in enumerate(waves):
        expected = segments(logmel(torch.from_numpy(wave)), 32, hop)
        mine = bank.gather(bank.of(np.array([position])))
        assert mine.shape == expected.shape == (len(expected), 32, audio.n_mels)
        assert torch.allclose(mine, expected)
    frames = 1 + (16000 - 400) // 160
    assert (bank.owner == 0).sum() == segment_count(frames, 32, hop)
    assert (bank.owner == 1).sum() == 1  # shorter than a segment: one padded segment
