"""Utterance encoders: (B, T) waveform + (B, T) mask -> (B, D) pooled embedding."""

from __future__ import annotations

import torch
from torch import nn

from emoref.config import AudioConfig, ConfigError, EncoderConfig
from emoref.data.audio import LogMel

# Architectures for encoder.pretrained=false. "base" is facebook/wav2vec2-base's; "tiny" keeps the
# same structure at a size that runs in milliseconds for tests.
WAV2VEC2_ARCHITECTURES = {
    "base": {},  # transformers' Wav2Vec2Config defaults are the base model
    "tiny": dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                 conv_dim=(32, 32), conv_stride=(5, 4), conv_kernel=(10, 8),
                 num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2,
                 feat_extract_norm="layer", do_stable_layer_norm=True),
}


def masked_mean(frames: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """(B, F, D) frames, (B, F) bool valid -> (B, D) mean over valid frames only."""
    weights = valid.to(frames.dtype).unsqueeze(-1)
    return (frames * weights).sum(1) / weights.sum(1).clamp_min(1.0)


class Wav2Vec2Encoder(nn.Module):
    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        from transformers import Wav2Vec2Config, Wav2Vec2Model

        if config.pretrained:
            # A model id or a local folder; a user asked for a real checkpoint.
            self.model = Wav2Vec2Model.from_pretrained(config.model)
        else:
            self.model = Wav2Vec2Model(Wav2Vec2Config(**WAV2VEC2_ARCHITECTURES[config.size]))
        if config.freeze_feature_extractor:
            self.model.freeze_feature_encoder()
        self.dim = self.model.config.hidden_size
        layers = self.model.config.num_hidden_layers
        if config.layer > layers:
            name = config.model if config.pretrained else config.size
            raise ConfigError(f"encoder.layer: expected -1 or 0..{layers} ({name} has {layers} "
                              f"layers), got {config.layer}")
        self.layer = config.layer

    def forward(self, wave: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        # (B, T) samples -> (B, F, D) frames; F from the conv stack's output lengths. Checkpoints with
        # group-norm feature extractors (wav2vec2-base) were trained on zero-padded input without an
        # attention mask, and transformers documents not passing one to them; the pooling below
        # still averages only the valid frames.
        use_mask = self.model.config.feat_extract_norm == "layer"
        out = self.model(wave, attention_mask=mask.long() if use_mask else None,
                         output_hidden_states=self.layer != -1)
        # hidden_states[0] is the projected features, [i] the output of transformer layer i.
        hidden = out.last_hidden_state if self.layer == -1 else out.hidden_states[self.layer]
        lengths = self.model._get_feat_extract_output_lengths(mask.sum(1))
        valid = torch.arange(hidden.shape[1], device=wave.device)[None, :] < lengths[:, None]
        return masked_mean(hidden, valid)


def masked_standardise(x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """(B, M, F) per-utterance, per-band standardisation over the valid frames only ((B, F) bool);
    padded frames become 0. InstanceNorm over a padded batch would count the padding (log(1e-6)
    = -13.8 per bin), so an utterance's features would depend on its batch neighbours."""
    keep = valid.unsqueeze(1).to(x.dtype)  # (B, 1, F)
    count = keep.sum(2, keepdim=True).clamp_min(1.0)
    mean = (x * keep).sum(2, keepdim=True) / count
    var = ((x - mean) ** 2 * keep).sum(2, keepdim=True) / count
    return (x - mean) / (var + 1e-5).sqrt() * keep


class LogMelCNN(nn.Module):
    """Conv blocks over (1, n_mels, frames) log-Mel, masked mean over time, a linear to embed_dim.

    Every step is masked: the log-Mel is standardised over valid frames, and padded frames are
    zeroed after each block (a convolution at an utterance's last frame then sees the same zeros
    as it does alone), so in eval mode an utterance's embedding does not depend on its batch."""

    def __init__(self, config: EncoderConfig, audio: AudioConfig) -> None:
        super().__init__()
        self.logmel = LogMel(audio)
        self.hop = int(round(audio.sample_rate * audio.hop_ms / 1000))
        self.window = int(round(audio.sample_rate * audio.win_ms / 1000))
        self.center = audio.center
        layers, channels = [], 1
        for block in range(config.cnn_blocks):
            out = config.cnn_channels * 2 ** block
            norm = nn.BatchNorm2d(out) if config.batch_norm else nn.Identity()
            layers += [nn.Conv2d(channels, out, 3, padding=1), norm, nn.ReLU(), nn.MaxPool2d(2)]
            channels = out
        self.blocks = nn.Sequential(*layers)  # 4 modules per block
        self.out = nn.Linear(channels, config.embed_dim)
        self.dim = config.embed_dim

    def forward(self, wave: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        samples = mask.sum(1)
        if self.center:
            lengths = 1 + samples // self.hop
        else:
            lengths = 1 + (samples - self.window).clamp_min(0) // self.hop
        logmel = self.logmel(wave)  # (B, n_mels, frames)
        steps = torch.arange(logmel.shape[2], device=wave.device)[None, :]
        x = masked_standardise(logmel, steps < lengths[:, None]).unsqueeze(1)  # (B, 1, M, F)
        for start in range(0, len(self.blocks), 4):
            x = self.blocks[start:start + 4](x)  # (B, C, M / 2, F / 2)
            lengths = lengths // 2  # MaxPool2d drops an odd last frame, alone or batched
            steps = torch.arange(x.shape[3], device=wave.device)[None, :]
            x = x * (steps < lengths[:, None])[:, None, None, :].to(x.dtype)
        frames = x.mean(2).transpose(1, 2)  # (B, frames / s, C)
        valid = torch.arange(frames.shape[1], device=wave.device)[None, :] < \
            lengths.clamp_min(1)[:, None]
        return self.out(masked_mean(frames, valid))


def build_encoder(config: EncoderConfig, audio: AudioConfig) -> nn.Module:
    def build() -> nn.Module:
        return Wav2Vec2Encoder(config) if config.kind == "wav2vec2" else LogMelCNN(config, audio)

    if config.freeze and not config.pretrained:
        # A frozen random encoder is one fixed feature map for every seed (config.init_seed); the
        # caller's generator is left as it was, so the heads still initialise from the run seed.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.init_seed)
            encoder = build()
    else:
        encoder = build()
    if config.freeze:
        for parameter in encoder.parameters():
            parameter.requires_grad_(False)
    return encoder


# Files of a transformers checkpoint: its config and its weights in one of the formats it saves.
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json",
                "pytorch_model.bin.index.json")


def check_weights(config: EncoderConfig) -> None:
    """Before anything trains or Ray starts: the wav2vec2 weights `encoder.model` names can be had,
    from a local folder holding a checkpoint, from the local Hugging Face cache, or from the hub.
    Raises ConfigError naming encoder.model, what was tried and the fix. (A hub id that is not
    cached is asked about with a 10 s timeout, nothing is downloaded here.)"""
    if config.kind != "wav2vec2" or not config.pretrained:
        return
    from pathlib import Path
    fix = ("give encoder.model a local folder holding config.json and model.safetensors (or "
           "pytorch_model.bin), or use encoder.pretrained=false for a run with random weights")
    folder = Path(config.model).expanduser()
    looks_local = config.model.startswith((".", "/", "~")) or folder.exists()
    if looks_local:
        missing = [] if (folder / "config.json").is_file() else ["config.json"]
        if not any((folder / name).is_file() for name in WEIGHT_FILES):
            missing.append(" or ".join(WEIGHT_FILES[:2]))
        if not folder.is_dir() or missing:
            what = "no such folder" if not folder.is_dir() else f"no {', '.join(missing)} in it"
            raise ConfigError(f"encoder.model={config.model}: tried the local folder ({what}); "
                              f"{fix}")
        return
    import huggingface_hub
    from huggingface_hub import try_to_load_from_cache
    cached = try_to_load_from_cache(config.model, "config.json")
    if isinstance(cached, str) and any(isinstance(try_to_load_from_cache(config.model, name), str)
                                       for name in WEIGHT_FILES):
        return
    try:
        huggingface_hub.model_info(config.model, timeout=10)
    except huggingface_hub.errors.RepositoryNotFoundError:
        raise ConfigError(f"encoder.model={config.model}: not in the local Hugging Face cache, "
                          f"and the hub has no model of that id (a typo, or a private model "
                          f"without a token); {fix}") from None
    except Exception as err:  # noqa: BLE001 - offline mode, no route, DNS: the hub cannot be asked
        raise ConfigError(f"encoder.model={config.model}: not in the local Hugging Face cache, "
                          f"and the hub cannot be reached ({type(err).__name__}); {fix}") from None
