"""Audio frontend: log-mel spectrogram with torch.stft and librosa's mel filters (batched)."""

from __future__ import annotations

import torch
from torch import nn

from ..config import AudioConfig

LOG_FLOOR = 1e-5  # mel energy floor; log(LOG_FLOOR) is what silence looks like


class LogMel(nn.Module):
    """(B, samples) float waveform at `sample_rate` -> (B, n_mels, frames) log-mel, 1 frame per hop."""

    def __init__(self, cfg: AudioConfig):
        super().__init__()
        import librosa  # deferred: slow to import

        self.cfg = cfg
        filters = librosa.filters.mel(
            sr=cfg.sample_rate, n_fft=cfg.n_fft, n_mels=cfg.n_mels, fmin=cfg.f_min, fmax=cfg.f_max
        )
        # Derived from the config, so not part of the saved weights.
        self.register_buffer("filters", torch.from_numpy(filters).float(), persistent=False)
        self.register_buffer("window", torch.hann_window(cfg.n_fft), persistent=False)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        if wave.dim() == 1:
            wave = wave[None]
        assert wave.dim() == 2, f"expected (B, samples), got {tuple(wave.shape)}"
        spec = torch.stft(
            wave.float(),
            n_fft=self.cfg.n_fft,
            hop_length=self.cfg.hop_length,
            window=self.window,
            center=True,
            pad_mode="reflect" if wave.shape[-1] > self.cfg.n_fft // 2 else "constant",
            return_complex=True,
        )
        power = spec.abs().pow(2)  # (B, n_fft/2+1, frames)
        mel = self.filters @ power  # (B, n_mels, frames)
        return torch.log(mel.clamp_min(LOG_FLOOR))

    def num_frames(self, num_samples: int) -> int:
        return num_samples // self.cfg.hop_length + 1
