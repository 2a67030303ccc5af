"""E_id^a on a pretrained speaker encoder: GE2E's LSTM (resemblyzer), frozen, and a trained head.

E_id^a trained from scratch on espeak-ng voices learns the synthesiser: on real recordings its f_id^a
tells men from women at 76 % (a logistic probe fitted on synthetic voices, tested on 18 RAVDESS actors),
against 97 % for GE2E d-vectors of the same clips, since GE2E heard thousands of real speakers. The
paper's E_id^a is likewise a speaker-verification network (ResNetSE34). GE2E reads 40-band mel power
from 25 ms windows; this module gets the model's log-mel (80 bands, `n_fft` window), so a fixed linear
map derived from both filterbanks turns one into the other (GE2E embeddings through it: cosine ~0.9 to
GE2E's own on the same clips), and each window's level is set to the one GE2E was trained at.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..config import AudioConfig, AudioIdentityConfig
from .mel import cached_mel_filters, mel_filters

GE2E_SAMPLE_RATE = 16000
# Mean 40-band mel power (librosa, 25 ms Hann window) of speech normalised to -30 dBFS, the level
# resemblyzer feeds GE2E; measured on corpus and RAVDESS clips (0.0091).
GE2E_LEVEL = 0.0091


def band_map(audio: AudioConfig, mels: int) -> np.ndarray:
    """(mels, n_mels): the model's mel bands -> GE2E's (0-8 kHz) on the same FFT grid, via the
    pseudo-inverse of the model's filterbank. Both filterbanks come from the s2tf cache, so loading the
    model does not import librosa."""
    ours = mel_filters(audio)
    theirs = cached_mel_filters(audio.sample_rate, audio.n_fft, mels, 0.0, audio.sample_rate / 2)
    return (theirs @ np.linalg.pinv(ours)).astype(np.float32)


class GE2E(nn.Module):
    """resemblyzer's VoiceEncoder network (parameter names kept, so its weights load as they are):
    (B, frames, mels) mel power -> (B, hidden) unit d-vector, non-negative."""

    def __init__(self, mels: int, hidden: int, layers: int):
        super().__init__()
        self.lstm = nn.LSTM(mels, hidden, layers, batch_first=True)
        self.linear = nn.Linear(hidden, hidden)

    def forward(self, mels: torch.Tensor) -> torch.Tensor:
        _, (h, _) = self.lstm(mels)
        return F.normalize(torch.relu(self.linear(h[-1])), dim=-1)


class GE2EIdentityEncoder(nn.Module):
    """(B, n_mels, T) log-mel -> (B, id_dim) f_id^a (unnormalised): GE2E over 1.6 s partials every
    0.8 s (what it was trained on), their mean d-vector, then an MLP into the identity space."""

    def __init__(self, cfg: AudioIdentityConfig, audio: AudioConfig, id_dim: int):
        super().__init__()
        if audio.sample_rate != GE2E_SAMPLE_RATE or audio.hop_length != GE2E_SAMPLE_RATE // 100:
            raise ValueError("audio_identity.backbone 'ge2e' needs 16 kHz audio and a 10 ms hop (GE2E's frames)")
        self.cfg = cfg
        # Derived from the config, so not part of the saved weights.
        self.register_buffer("band_map", torch.from_numpy(band_map(audio, cfg.ge2e_mels)), persistent=False)
        self.backbone = GE2E(cfg.ge2e_mels, cfg.ge2e_hidden, cfg.ge2e_layers)
        self.head = nn.Sequential(nn.Linear(cfg.ge2e_hidden, cfg.head_hidden), nn.ReLU(True),
                                  nn.Linear(cfg.head_hidden, id_dim))  # fmt: skip

    def pretrained_parts(self) -> list[nn.Module]:
        """Modules that keep their pretrained weights in every training stage."""
        return [] if self.cfg.train_backbone else [self.backbone]

    def ge2e_input(self, mel: torch.Tensor) -> torch.Tensor:
        """(B, n_mels, T) log-mel -> (B * P, partial, mels) GE2E partials; P per clip, the same for all."""
        power = (self.band_map @ mel.float().exp()).clamp_min(0)  # (B, mels, T)
        power = power * (GE2E_LEVEL / power.mean(dim=(1, 2), keepdim=True).clamp_min(1e-10))
        n = self.cfg.ge2e_partial
        if power.shape[-1] < n:
            power = F.pad(power, (0, n - power.shape[-1]))
        parts = power.unfold(-1, n, max(n // 2, 1))  # (B, mels, P, n)
        return parts.permute(0, 2, 3, 1).flatten(0, 1)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        assert mel.dim() == 3, f"expected (B, n_mels, T), got {tuple(mel.shape)}"
        b = mel.shape[0]
        frozen = not self.cfg.train_backbone
        # fp32 under bf16 autocast too: the level and the LSTM's recurrence need it, and it is cheap.
        with (
            torch.autocast(mel.device.type, enabled=False),
            torch.set_grad_enabled(torch.is_grad_enabled() and not frozen),
        ):
            d = self.backbone(self.ge2e_input(mel.float())).view(b, -1, self.cfg.ge2e_hidden).mean(1)
        return self.head(F.normalize(d, dim=-1))
