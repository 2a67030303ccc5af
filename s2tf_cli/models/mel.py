"""Audio frontend: log-mel spectrogram with torch.stft and librosa's mel filters (batched)."""

from __future__ import annotations

import os

import numpy as np
import torch
from torch import nn

from ..config import AudioConfig

LOG_FLOOR = 1e-5  # mel energy floor; log(LOG_FLOOR) is what silence looks like


def mel_filters(cfg: AudioConfig) -> np.ndarray:
    """librosa's mel filterbank for `cfg` (cached, see `cached_mel_filters`)."""
    return cached_mel_filters(cfg.sample_rate, cfg.n_fft, cfg.n_mels, cfg.f_min, cfg.f_max)


def cached_mel_filters(sample_rate: int, n_fft: int, n_mels: int, f_min: float, f_max: float) -> np.ndarray:
    """librosa's mel filterbank, kept in the s2tf cache: importing librosa (scipy.signal, numba) costs
    ~1.5 s and ~100 MB of every cold start, the filterbank itself is a few kB."""
    from importlib.metadata import version

    from ..cache import cache_root

    key = f"{sample_rate}-{n_fft}-{n_mels}-{f_min:g}-{f_max:g}-librosa{version('librosa')}"
    path = cache_root() / "mel" / f"{key}.npy"
    try:
        filters = np.load(path, allow_pickle=False)
        if filters.shape == (n_mels, n_fft // 2 + 1):
            return filters
    except (OSError, ValueError):
        pass
    import librosa

    filters = librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels, fmin=f_min, fmax=f_max)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        with open(tmp, "wb") as fh:
            np.save(fh, filters.astype(np.float32), allow_pickle=False)
        os.replace(tmp, path)
    except OSError:  # a read-only cache only costs speed
        pass
    return filters


class LogMel(nn.Module):
    """(B, samples) float waveform at `sample_rate` -> (B, n_mels, frames) log-mel, 1 frame per hop."""

    def __init__(self, cfg: AudioConfig):
        super().__init__()
        self.cfg = cfg
        filters = mel_filters(cfg)
        # Derived from the config, so not part of the saved weights.
        self.register_buffer("filters", torch.from_numpy(filters).float(), persistent=False)
        self.register_buffer("window", torch.hann_window(cfg.n_fft), persistent=False)

    def forward(self, wave: torch.Tensor, chunk_frames: int = 3000) -> torch.Tensor:
        """Long single clips go through the STFT `chunk_frames` frames (30 s) at a time: the complex
        spectrogram of an hour of audio would otherwise take ~1 GB. The frames are the same either way."""
        if wave.dim() == 1:
            wave = wave[None]
        assert wave.dim() == 2, f"expected (B, samples), got {tuple(wave.shape)}"
        frames = self.num_frames(wave.shape[-1])
        if len(wave) > 1 or frames <= chunk_frames:
            return self._log_mel(wave, center=True)
        read = lambda lo, hi: wave[:, lo:hi]  # noqa: E731
        parts = [
            self.frames_from(read, wave.shape[-1], s, min(chunk_frames, frames - s))
            for s in range(0, frames, chunk_frames)
        ]
        return torch.cat(parts, dim=-1)

    def frames_from(self, read, samples: int, start: int, n: int) -> torch.Tensor:
        """(B, n_mels, n) frames [start, start + n) of a clip of `samples` samples that `read(lo, hi)`
        returns piecewise as (B, hi - lo) tensors: what forward gives for the whole clip (center=True,
        reflected at the clip's ends only), without the whole clip in memory."""
        hop, half = self.cfg.hop_length, self.cfg.n_fft // 2
        lo, hi = start * hop - half, start * hop + (n - 1) * hop + half
        left, right = max(-lo, 0), max(hi - samples, 0)
        pieces = [read(max(lo, 0), min(hi, samples))]
        if left:
            pieces.insert(0, read(1, 1 + left).flip(-1))
        if right:
            pieces.append(read(samples - 1 - right, samples - 1).flip(-1))
        return self._log_mel(torch.cat(pieces, dim=-1).float(), center=False)

    def _log_mel(self, wave: torch.Tensor, center: bool) -> torch.Tensor:
        spec = torch.stft(
            wave.float(),
            n_fft=self.cfg.n_fft,
            hop_length=self.cfg.hop_length,
            window=self.window,
            center=center,
            pad_mode="reflect" if wave.shape[-1] > self.cfg.n_fft // 2 else "constant",
            return_complex=True,
        )
        power = spec.abs().pow(2)  # (B, n_fft/2+1, frames)
        mel = self.filters @ power  # (B, n_mels, frames)
        return torch.log(mel.clamp_min(LOG_FLOOR))

    def num_frames(self, num_samples: int) -> int:
        return num_samples // self.cfg.hop_length + 1
