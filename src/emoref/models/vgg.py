"""VGG (Simonyan & Zisserman 2014, Table 1: configurations A, B, D, E) for EPR's 32 x 64 segments.

Input (B, 32, 64): 32 frames x 64 log-Mel bins, one channel. A 2x2 max-pool halves each spatial
axis only while that axis is at least 2 long, so the five pools of every configuration fit 32 x 64
(32 -> 1 frames, 64 -> 2 bins). Widths scale by `width` (1.0 is the original 64...512 channels);
the classifier is VGG's two hidden fully connected layers with dropout, then K classes (the paper's
"tweak" to the last softmax layer).
"""

from __future__ import annotations

import torch
from torch import nn

# Numbers are 3x3 conv output channels, "M" a max-pool (the paper's Table 1).
CONFIGURATIONS = {
    "A": (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"),
    "B": (64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"),
    "D": (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"),
    "E": (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
          512, 512, 512, 512, "M"),
}


class VGG(nn.Module):
    def __init__(self, configuration: str, n_classes: int, width: float = 1.0, fc: int = 4096,
                 dropout: float = 0.5, batch_norm: bool = True,
                 input_size: tuple[int, int] = (32, 64)) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels, (h, w) = 1, input_size
        for item in CONFIGURATIONS[configuration]:
            if item == "M":
                kh, kw = (2 if h >= 2 else 1), (2 if w >= 2 else 1)
                if kh > 1 or kw > 1:
                    layers.append(nn.MaxPool2d((kh, kw)))
                h, w = h // kh, w // kw
                continue
            out = max(1, int(round(item * width)))
            layers.append(nn.Conv2d(channels, out, 3, padding=1))
            if batch_norm:
                layers.append(nn.BatchNorm2d(out))
            layers.append(nn.ReLU(inplace=True))
            channels = out
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(channels * h * w, fc), nn.ReLU(inplace=True), nn.Dropout(dropout),
            nn.Linear(fc, fc), nn.ReLU(inplace=True), nn.Dropout(dropout), nn.Linear(fc, n_classes))
        self.set_memory_format(torch.channels_last)

    def set_memory_format(self, memory_format: torch.memory_format) -> VGG:
        """Where the feature maps' channels lie in memory: channels last (the default) computes
        the same convolutions and pools as the contiguous layout, faster (BENCHMARKS.md, pair 10:
        a stage epoch of the cpu preset's VGG on one thread), and the weights are the same
        values either way; only float rounding can differ."""
        self.memory_format = memory_format
        return self.to(memory_format=memory_format)

    def forward(self, segments: torch.Tensor) -> torch.Tensor:
        """(B, frames, n_mels) log-Mel segments -> (B, K) logits."""
        x = segments.unsqueeze(1).contiguous(memory_format=self.memory_format)
        return self.classifier(self.features(x))
