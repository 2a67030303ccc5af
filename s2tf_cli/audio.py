"""Voice input: any file soundfile or ffmpeg can decode, as 16 kHz mono float32.

soundfile reads WAV/FLAC/OGG/MP3 directly; anything else (m4a, the audio track of a video) goes
through the ffmpeg binary shipped by imageio-ffmpeg, called with an argument list.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np

from .errors import InputError, UsageError


def check_readable(path: str | Path) -> Path:
    """The path as a Path, or a UsageError that names it."""
    p = Path(path)
    if not p.exists():
        raise UsageError(f"{p}: no such file")
    if p.is_dir():
        raise UsageError(f"{p}: is a directory, not an audio file")
    return p


def load_audio(path: str | Path, sample_rate: int = 16000) -> np.ndarray:
    """Decode `path` to mono float32 at `sample_rate` (any input rate, channel count, bit depth)."""
    p = check_readable(path)
    if p.stat().st_size == 0:
        raise InputError(f"{p}: empty file")
    try:
        wave, sr = _read_soundfile(p)
    except _NotForSoundfile:
        wave, sr = _read_ffmpeg(p, sample_rate)
    if wave.size == 0:
        raise InputError(f"{p}: no audio samples")
    if not np.all(np.isfinite(wave)):
        raise InputError(f"{p}: audio holds NaN or infinite samples")
    if sr != sample_rate:
        import soxr

        wave = soxr.resample(wave, sr, sample_rate).astype(np.float32)
    return np.ascontiguousarray(wave, dtype=np.float32)


class _NotForSoundfile(Exception):
    pass


def _read_soundfile(p: Path) -> tuple[np.ndarray, int]:
    import soundfile as sf

    try:
        data, sr = sf.read(str(p), dtype="float32", always_2d=True)
    except sf.LibsndfileError as exc:
        raise _NotForSoundfile(str(exc)) from None
    except (RuntimeError, ValueError) as exc:  # truncated data chunks and the like
        raise InputError(f"{p}: cannot decode audio: {exc}") from None
    return (data[:, 0] if data.shape[1] == 1 else data.mean(axis=1)), int(sr)  # mono: a view, no copy


def _read_ffmpeg(p: Path, sample_rate: int) -> tuple[np.ndarray, int]:
    import imageio_ffmpeg

    cmd = [
        imageio_ffmpeg.get_ffmpeg_exe(), "-nostdin", "-v", "error", "-i", str(p),
        "-vn", "-ac", "1", "-ar", str(sample_rate), "-f", "f32le", "-",
    ]  # fmt: skip
    try:
        proc = subprocess.run(cmd, capture_output=True, timeout=600)
    except subprocess.TimeoutExpired:
        raise InputError(f"{p}: decoding took too long") from None
    if proc.returncode != 0 or not proc.stdout:
        lines = proc.stderr.decode(errors="replace").strip().splitlines()
        reason = lines[-1].split(": ", 1)[-1] if lines else "no audio stream"
        raise InputError(f"{p}: not a readable audio file ({reason})")
    return np.frombuffer(proc.stdout, dtype=np.float32).copy(), sample_rate


def normalize_loudness(wave: np.ndarray, target_dbfs: float = -20.0) -> np.ndarray:
    """Scale so the loud half of 20 ms frames sits at `target_dbfs` RMS: the encoders see the same
    level whether the recording was quiet or hot. Silence stays silence (never amplified past 40 dB)."""
    frame = 320
    n = len(wave) // frame
    if n == 0:
        return wave
    rms = np.sqrt(np.mean(wave[: n * frame].reshape(n, frame) ** 2, axis=1) + 1e-12)
    loud = np.sort(rms)[n // 2 :]
    level = float(np.mean(loud))
    gain = min(10 ** (target_dbfs / 20) / max(level, 1e-9), 100.0)
    out = np.multiply(wave, np.float32(gain), dtype=np.float32)  # one copy, even for an hour of audio
    return np.clip(out, -1.0, 1.0, out=out)


def has_speech(wave: np.ndarray, sample_rate: int = 16000) -> bool:
    """Crude voice-activity check: some 20 ms frames well above the quietest ones and above a floor."""
    frame = sample_rate // 50
    n = len(wave) // frame
    if n < 2:
        return False
    rms = np.sqrt(np.mean(wave[: n * frame].reshape(n, frame) ** 2, axis=1))
    floor = np.percentile(rms, 10)
    return bool(np.percentile(rms, 90) > max(3 * floor, 10 ** (-70 / 20)))  # speech peaking near -50 dBFS counts
