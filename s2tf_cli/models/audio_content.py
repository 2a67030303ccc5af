"""E_s^a: the audio content encoder, one feature per video frame in the speech content subspace."""

from __future__ import annotations

import torch
from torch import nn

from ..config import AudioContentConfig


class AudioContentEncoder(nn.Module):
    """(B, n_mels, content_window) mel window centred on a video frame -> (B, ir_dim) f_s^a."""

    def __init__(self, cfg: AudioContentConfig, n_mels: int, window: int, ir_dim: int):
        super().__init__()
        # Learned fixed normalisation, not per window: a window's absolute energy tells silence from speech.
        self.input_norm = nn.BatchNorm1d(n_mels)
        layers, cin = [], 1
        for cout in cfg.channels:
            layers += [nn.Conv2d(cin, cout, 3, 2, 1), nn.BatchNorm2d(cout), nn.LeakyReLU(0.2, True)]
            cin = cout
        self.convs = nn.Sequential(*layers)
        self.fc = nn.Linear(cin, ir_dim)
        self.window = window

    def forward(self, mel_windows: torch.Tensor) -> torch.Tensor:
        assert mel_windows.dim() == 3 and mel_windows.shape[-1] == self.window, (
            f"expected (B, n_mels, {self.window}), got {tuple(mel_windows.shape)}"
        )
        x = self.convs(self.input_norm(mel_windows)[:, None])  # (B, C, F', T')
        return self.fc(x.mean(dim=(2, 3)))
