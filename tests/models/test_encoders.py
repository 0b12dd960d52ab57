"""Encoders and heads built from small configs (nothing is downloaded)."""

import torch

from emoref.config import build_config
from emoref.models.encoders import build_encoder, masked_mean
from emoref.models.heads import Classifier, Projection


def batch():
    wave = torch.randn(2, 16000) * 0.1
    mask = torch.ones(2, 16000, dtype=torch.bool)
    mask[1, 6000:] = False
    wave[1, 6000:] = 0.0
    return wave, mask


def test_masked_mean_ignores_padding():
    frames = torch.tensor([[[1.0], [3.0], [100.0]]])
    assert masked_mean(frames, torch.tensor([[True, True, False]])).item() == 2.0


def test_tiny_wav2vec2_pools_valid_frames_and_freezes():
    config = build_config("cpu", ["encoder.kind=wav2vec2", "encoder.size=tiny"])
    encoder = build_encoder(config.encoder, config.audio).eval()
    wave, mask = batch()
    out = encoder(wave, mask)
    assert out.shape == (2, 32)
    # Padding must not change the second utterance's embedding.
    alone = encoder(wave[1:, :6000], mask[1:, :6000])
    assert torch.allclose(out[1], alone[0], atol=1e-4)
    conv = encoder.model.feature_extractor
    assert not any(p.requires_grad for p in conv.parameters())
    frozen = build_config("cpu", ["encoder.kind=wav2vec2", "encoder.size=tiny", "encoder.freeze=true"])
    assert not any(p.requires_grad for p in build_encoder(frozen.encoder, frozen.audio).parameters())


def test_logmel_cnn_and_heads():
    config = build_config("cpu")
    encoder = build_encoder(config.encoder, config.audio).eval()
    wave, mask = batch()
    h = encoder(wave, mask)
    assert h.shape == (2, config.encoder.embed_dim)
    logits = Classifier(h.shape[1], 4, config.head)(h)
    k = Projection(h.shape[1], config.head)(h)
    assert logits.shape == (2, 4)
    assert torch.allclose(k.norm(dim=1), torch.ones(2), atol=1e-6)


def test_logmel_cnn_embedding_does_not_depend_on_its_batch():
    # Statistics over valid frames only: in eval mode an utterance's embedding is the same alone
    # and padded beside a much longer one (the padding used to enter InstanceNorm's statistics).
    config = build_config("cpu", ["encoder.kind=logmel_cnn"])
    encoder = build_encoder(config.encoder, config.audio).eval()
    generator = torch.Generator().manual_seed(0)
    short = torch.randn(16000 + 1234, generator=generator) * 0.1
    long = torch.randn(16000 * 5, generator=generator) * 0.1
    alone = encoder(short[None], torch.ones(1, len(short), dtype=torch.bool))
    wave = torch.zeros(2, len(long))
    mask = torch.zeros(2, len(long), dtype=torch.bool)
    wave[0, :len(short)], mask[0, :len(short)] = short, True
    wave[1], mask[1] = long, True
    with torch.no_grad():
        batched = encoder(wave, mask)
    assert torch.allclose(alone[0], batched[0], atol=1e-5)
