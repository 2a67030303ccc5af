"""Where a clip holds speech, from Silero VAD (its ONNX model ships in the silero-vad wheel; onnxruntime runs
it): loud, compressed or music-backed speech is speech; silence, steady noise and music without voice are not.
A level-percentile test cannot tell those apart (issue 32)."""

from __future__ import annotations

import functools
import threading

import numpy as np

RATE = 16000  # Silero's models take 8 or 16 kHz; everything here is 16 kHz
CHUNK = 512  # samples per probability at 16 kHz (32 ms)
THRESHOLD = 0.3  # speech probability of a speech chunk: Silero's default 0.5 refuses 5 of the 1,008 real s2f clips
# (music or crowd under the voice), 0.3 refuses 2; music, noise and hum alone stay under 0.21
MIN_SPEECH_S = 0.25  # less than this in a whole clip is no speech (Silero's shortest speech segment)

_lock = threading.Lock()  # the ONNX session keeps recurrent state between chunks: one clip at a time


@functools.cache
def _detector():
    from importlib.resources import files

    from silero_vad.utils_vad import OnnxWrapper

    return OnnxWrapper(str(files("silero_vad.data") / "silero_vad.onnx"), force_onnx_cpu=True)


def speech_probabilities(wave: np.ndarray, sample_rate: int = RATE) -> np.ndarray:
    """Speech probability of each 32 ms chunk of a mono clip (the clip is resampled to 16 kHz if needed)."""
    import torch

    if sample_rate != RATE:
        import soxr

        wave = soxr.resample(wave, sample_rate, RATE)
    wave = np.ascontiguousarray(wave, dtype=np.float32)
    if len(wave) < CHUNK:
        return np.zeros(0, np.float32)
    with _lock, torch.inference_mode():
        probs = _detector().audio_forward(torch.from_numpy(wave), RATE)
    return probs.reshape(-1).float().numpy()


def seconds(probs: np.ndarray) -> float:
    """Speech heard in a clip, from its `speech_probabilities`."""
    return float(np.count_nonzero(probs >= THRESHOLD)) * CHUNK / RATE


def speech_seconds(wave: np.ndarray, sample_rate: int = RATE) -> float:
    return seconds(speech_probabilities(wave, sample_rate))


def has_speech(wave: np.ndarray, sample_rate: int = RATE) -> bool:
    return speech_seconds(wave, sample_rate) >= MIN_SPEECH_S


MOSTLY_SPEECH = 0.5  # an identity window with less speech than this says too little about the voice


def speech_share(probs: np.ndarray, starts: list[int], length: int, hop: int) -> np.ndarray:
    """Share of speech chunks in each window [start, start + length) given in frames of `hop` samples."""
    speech = (probs >= THRESHOLD).astype(np.float64)
    if len(speech) == 0:
        return np.zeros(len(starts))
    cum = np.concatenate([[0.0], np.cumsum(speech)])
    out = []
    for s in starts:
        lo = min(len(speech), s * hop // CHUNK)
        hi = min(len(speech), max(lo + 1, (s + length) * hop // CHUNK))
        out.append((cum[hi] - cum[lo]) / max(hi - lo, 1))
    return np.asarray(out)
