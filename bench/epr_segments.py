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
from emoref.data.features import logmel_frames
from emoref.data.segments import bank_from_frames
from emoref.methods import epr
from emoref.data.features import load_waves
from emoref.methods.common import label_array


def run(work: Path, quick: bool, repeats: int, emodb_root: Path | None = None) -> Result:
    cache = work / "cache"
    found = None if quick else emodb(cache, emodb_root)
    if found:
        config, manifest = found
        corpus = f"EmoDB ({len(manifest.utterances)} utterances)"
    else:
        config, manifest = synthetic(cache, "corpus.synthetic.n_utterances=32", method="epr") \
            if quick else synthetic(cache, method="epr")
        corpus = f"synthetic corpus ({len(manifest.utterances)} utterances; EmoDB not found)"
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
    bank = bank_from_frames(logmel_frames(utterances, config), config.audio)
    labels = label_array(utterances, sorted({u.label for u in utterances}))
    n_classes = int(labels.max()) + 1
    order = np.random.default_rng(0).permutation(len(bank.starts))
    cut = int(0.9 * len(order))
    fit_segs, val_segs = np.sort(order[:cut]), np.sort(order[cut:])
    targets = F.one_hot(torch.from_numpy(labels[bank.owner]), n_classes).float()
    norm = epr.normaliser(bank, fit_segs)
    one_epoch = with_values(config, epr__max_epochs=1)
    epoch = Figure(f"one stage epoch ({len(fit_segs)} training segments)", "s")
    for repeat in range(repeats):
        network = epr.new_network(one_epoch, n_classes, repeat)
        epoch.values.append(timed(lambda: epr.train_network(
            network, bank, fit_segs, val_segs, targets, labels[bank.owner], norm, one_epoch,
            lambda *a: None))[0])
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
