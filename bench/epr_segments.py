"""Pair 5: EPR's segments computed from the audio vs read from the feature cache, and the time of
one refinery stage's epoch beside them.

Extraction: log-Mel frames of every utterance (decoded waveforms already in the audio cache), cut
into 32-frame segments at the paper's 10 ms hop (Emo-DB: 131,053 segments), vs the same frames
read back from the log-Mel cache (emoref.data.features) that every trial, seed and fold shares.
Epoch: one epoch of a stage's VGG (the cpu preset's configuration A at width 0.125) over 90% of the
segments at the cpu preset's 100 ms hop, 2 threads, validation pass included."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from bench.common import Figure, Result, emodb, synthetic, timed, with_values
from emoref.config import RunConfig
from emoref.data.manifest import Manifest
from emoref.data.features import logmel_frames
from emoref.data.segments import bank_from_frames
from emoref.methods import epr
from emoref.data.features import load_waves
from emoref.methods.common import label_array


class StageData:
    """What one EPR stage network trains on, as pairs 5, 9 and 10 time it: the corpus's segments
    at the config's hop, one-hot targets, 90% of the segments (seeded) to fit, the rest for the
    validation pass, standardised by the fitted ones."""

    def __init__(self, utterances: list, config: RunConfig, seed: int = 0) -> None:
        self.bank = bank_from_frames(logmel_frames(utterances, config), config.audio)
        self.labels = label_array(utterances, sorted({u.label for u in utterances}))
        self.n_classes = int(self.labels.max()) + 1
        order = np.random.default_rng(seed).permutation(len(self.bank.starts))
        cut = int(0.9 * len(order))
        self.fit_segs, self.val_segs = np.sort(order[:cut]), np.sort(order[cut:])
        self.targets = F.one_hot(torch.from_numpy(self.labels[self.bank.owner]),
                                 self.n_classes).float()
        self.norm = epr.normaliser(self.bank, self.fit_segs)

    def train(self, network: torch.nn.Module, config: RunConfig) -> None:
        epr.train_network(network, self.bank, self.fit_segs, self.val_segs, self.targets,
                          self.labels[self.bank.owner], self.norm, config, lambda *a: None)


def epr_corpus(cache: Path, quick: bool, emodb_root: Path | None
               ) -> tuple[RunConfig, Manifest, str]:
    """EmoDB at the cpu preset when found (never with --quick), else the synthetic corpus (32
    utterances with --quick): its EPR config, manifest, and a line naming it."""
    found = None if quick else emodb(cache, emodb_root)
    if found:
        config, manifest = found
        return config, manifest, f"EmoDB ({len(manifest.utterances)} utterances)"
    config, manifest = synthetic(cache, "corpus.synthetic.n_utterances=32", method="epr") \
        if quick else synthetic(cache, method="epr")
    return config, manifest, (f"synthetic corpus ({len(manifest.utterances)} utterances; EmoDB "
                              "not found)")


def run(work: Path, quick: bool, repeats: int, emodb_root: Path | None = None) -> Result:
    config, manifest, corpus = epr_corpus(work / "cache", quick, emodb_root)
    utterances = manifest.utterances
    torch.set_num_threads(2)
    load_waves(utterances, config)  # decoding is not what is compared
    paper_hop = with_values(config, audio__segment_hop=1)
    computed, cached = Figure("computed", "segments/s"), Figure("feature cache", "segments/s")
    logmel_frames(utterances, config)  # fill the cache
    count = 0
    for _ in range(repeats):
        seconds, bank = timed(lambda: bank_from_frames(
            logmel_frames(utterances, paper_hop, cache=False), paper_hop.audio))
        count = len(bank.starts)
        computed.values.append(count / seconds)
        seconds, bank = timed(lambda: bank_from_frames(
            logmel_frames(utterances, paper_hop), paper_hop.audio))
        cached.values.append(len(bank.starts) / seconds)
    # ---- One stage's epoch at the cpu preset's hop.
    stage = StageData(utterances, config)
    one_epoch = with_values(config, epr__max_epochs=1)
    epoch = Figure(f"one stage epoch ({len(stage.fit_segs)} training segments)", "s")
    for repeat in range(repeats):
        network = epr.new_network(one_epoch, stage.n_classes, repeat)
        epoch.values.append(timed(lambda: stage.train(network, one_epoch))[0])
    extraction = count / cached.median
    return Result(
        title="5. EPR: segment extraction, computed vs feature cache; one stage epoch",
        setup=f"{corpus}, {count} segments at a 10 ms hop; epoch: VGG-{config.epr.vgg} width "
              f"{config.epr.width}, batch {config.epr.batch_size}, hop {config.audio.segment_hop} "
              "frames, 2 threads",
        figures=[computed, cached, epoch],
        ratios={"cache_over_computed": (cached.median / computed.median, "segments per second"),
                "epoch_over_cached_extraction": (epoch.median / extraction,
                                                 "one epoch / reading every segment from cache")})
