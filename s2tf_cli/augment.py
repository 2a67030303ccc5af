"""Augmentation. Visual (for I+): change texture and shape, keep pose and mouth. Audio (identity
windows): noise, reverberation, band-limiting, gain and speed, so the audio identity encoder learns
the voice rather than one recording chain or the synthesiser's artefacts."""

from __future__ import annotations

import numpy as np


def visual(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Colour, contrast, blur and a mild anisotropic stretch about the centre (face shape)."""
    import cv2

    img = image.astype(np.float32)
    # colour: per-channel gain, brightness, contrast, saturation
    img = img * rng.uniform(0.8, 1.2, 3) + rng.uniform(-25, 25)
    mean = img.mean()
    img = (img - mean) * rng.uniform(0.7, 1.3) + mean
    gray = img.mean(axis=2, keepdims=True)
    img = gray + (img - gray) * rng.uniform(0.3, 1.4)
    if rng.random() < 0.3:
        k = int(rng.choice([3, 5]))
        img = cv2.GaussianBlur(img, (k, k), 0)
    h, w = img.shape[:2]
    sx, sy = rng.uniform(0.92, 1.08, 2)
    m = np.array([[sx, 0, (1 - sx) * w / 2], [0, sy, (1 - sy) * h / 2]], np.float32)
    img = cv2.warpAffine(img, m, (w, h), borderMode=cv2.BORDER_REFLECT)
    img = img + rng.normal(0, rng.uniform(0, 6), img.shape)
    return img.clip(0, 255).astype(np.uint8)


def window(audio: np.ndarray, start: int, length: int) -> np.ndarray:
    """audio[start : start + length], zero-padded where it leaves the clip."""
    out = np.zeros(length, np.float32)
    lo, hi = max(start, 0), min(start + length, len(audio))
    if hi > lo:
        out[lo - start : hi - start] = audio[lo:hi]
    return out


def crop_or_pad(audio: np.ndarray, length: int, rng: np.random.Generator) -> np.ndarray:
    if len(audio) <= length:
        return window(audio, -int(rng.integers(0, length - len(audio) + 1)), length)
    start = int(rng.integers(0, len(audio) - length + 1))
    return audio[start : start + length].astype(np.float32)


def reverberate(x: np.ndarray, ir: np.ndarray) -> np.ndarray:
    """The first len(x) samples of x convolved with ir, by FFT: convolving a 0.6 s response directly took
    most of a training batch's drawing time."""
    from scipy.signal import fftconvolve

    return fftconvolve(x, ir)[: len(x)].astype(np.float32)


def audio(wave: np.ndarray, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """A randomly degraded copy of `wave`, same length."""
    import soxr

    n = len(wave)
    x = wave.astype(np.float32)
    if rng.random() < 0.5:  # speed perturbation (Kaldi-style): tempo and pitch by +-6 %
        factor = rng.uniform(0.94, 1.06)
        x = soxr.resample(x, sample_rate * factor, sample_rate).astype(np.float32)
        x = window(x, 0, n)
    if rng.random() < 0.4:  # reverberation: exponentially decaying noise impulse response
        rt = rng.uniform(0.1, 0.6)
        length = int(rt * sample_rate)
        ir = rng.standard_normal(length) * np.exp(-6.9 * np.arange(length) / length)
        ir[0] = 1.0
        ir /= np.sqrt(np.sum(ir**2))
        x = reverberate(x, ir.astype(np.float32))
    if rng.random() < 0.4:  # band-limiting: telephone-like or muffled
        spec = np.fft.rfft(x)
        freqs = np.fft.rfftfreq(n, 1 / sample_rate)
        lo, hi = rng.uniform(50, 400), rng.uniform(3000, 7500)
        spec[(freqs < lo) | (freqs > hi)] *= 0.02
        x = np.fft.irfft(spec, n).astype(np.float32)
    if rng.random() < 0.6:  # additive noise at 5-35 dB SNR (white or brown)
        noise = rng.standard_normal(n).astype(np.float32)
        if rng.random() < 0.5:
            noise = np.cumsum(noise)
            noise -= np.convolve(noise, np.ones(101) / 101, mode="same")
        snr = rng.uniform(5, 35)
        p_sig = np.mean(x**2) + 1e-10
        noise *= np.sqrt(p_sig / (np.mean(noise**2) + 1e-10) / 10 ** (snr / 10))
        x = x + noise
    x = x * 10 ** (rng.uniform(-12, 6) / 20)  # gain
    return np.clip(x, -1, 1).astype(np.float32)
