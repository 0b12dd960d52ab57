"""Pair 10: an EPR stage network's epoch with channels-last feature maps vs the contiguous layout.

Both train the same network (same initial weights, batches and dropout draws) for one epoch of the
cpu preset's VGG (configuration A at width 0.125, batch 128) on 90% of the segments at the
preset's 100 ms hop, validation pass included, on one thread (the setting of `studies/epr.sh`'s
lanes), alternating the two layouts within each repeat. The layout changes only where a feature
map's channels lie in memory; the largest difference between the two networks' profiles after the
epoch is printed beside the times."""

from __future__ import annotations

from pathlib import Path

import torch

from bench.common import Figure, Result, timed, with_values
from bench.epr_segments import StageData, epr_corpus
from emoref.methods import epr

LAYOUTS = {"channels last": torch.channels_last, "contiguous (NCHW)": torch.contiguous_format}


def run(work: Path, quick: bool, repeats: int, emodb_root: Path | None = None) -> Result:
    config, manifest, corpus = epr_corpus(work / "cache", quick, emodb_root)
    torch.set_num_threads(1)
    stage = StageData(manifest.utterances, config)
    one_epoch = with_values(config, epr__max_epochs=1)
    figures = {name: Figure(f"one stage epoch, {name}", "s") for name in LAYOUTS}
    gap = 0.0
    for repeat in range(repeats):
        profiles = []
        for name, layout in LAYOUTS.items():
            network = epr.new_network(one_epoch, stage.n_classes, repeat).set_memory_format(layout)
            figures[name].values.append(timed(lambda: stage.train(network, one_epoch))[0])
            profiles.append(epr.predict_profiles(network, stage.bank, stage.norm,
                                                 config.epr.batch_size, stage.val_segs))
        gap = max(gap, float((profiles[0] - profiles[1]).abs().max()))
    last, plain = figures.values()
    return Result(
        title="10. EPR stage epoch: channels-last feature maps vs contiguous",
        setup=f"{corpus}, VGG-{config.epr.vgg} width {config.epr.width}, batch "
              f"{config.epr.batch_size}, {len(stage.fit_segs)} training segments, 1 thread; "
              f"largest profile difference between the layouts after the epoch: {gap:.2g}",
        figures=[last, plain],
        ratios={"contiguous_over_channels_last": (plain.median / last.median,
                                                   "seconds per epoch")})
