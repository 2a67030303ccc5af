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


def decode_to_wav(path: str | Path, dst: Path, sample_rate: int = 16000, block_s: float = 10.0) -> int:
    """Decode `path` into a mono float32 WAV at `sample_rate`, a block at a time, so memory stays flat
    for any length (an hour of audio is 230 MB as float32). Returns the number of samples written."""
    import soundfile as sf

    p = check_readable(path)
    if p.stat().st_size == 0:
        raise InputError(f"{p}: empty file")
    try:
        src = sf.SoundFile(str(p))
    except (sf.LibsndfileError, RuntimeError):
        total = _ffmpeg_to_wav(p, dst, sample_rate)
    else:
        total = _soundfile_to_wav(p, src, dst, sample_rate, block_s)
    if total == 0:
        raise InputError(f"{p}: no audio samples")
    return total


def _soundfile_to_wav(p: Path, src, dst: Path, sample_rate: int, block_s: float) -> int:
    import soundfile as sf
    import soxr

    block = max(int(src.samplerate * block_s), 1)
    resampler = (
        soxr.ResampleStream(src.samplerate, sample_rate, 1, dtype="float32") if src.samplerate != sample_rate else None
    )
    total = 0
    with src, sf.SoundFile(str(dst), "w", sample_rate, 1, subtype="FLOAT", format="WAV") as out:
        while True:
            try:
                data = src.read(block, dtype="float32", always_2d=True)
            except (RuntimeError, ValueError) as exc:  # truncated data chunks and the like
                raise InputError(f"{p}: cannot decode audio: {exc}") from None
            last = len(data) < block
            mono = np.ascontiguousarray(data[:, 0] if data.shape[1] == 1 else data.mean(axis=1), dtype=np.float32)
            if not np.all(np.isfinite(mono)):
                raise InputError(f"{p}: audio holds NaN or infinite samples")
            if resampler is not None:
                mono = resampler.resample_chunk(mono, last=last)
            out.write(mono)
            total += len(mono)
            if last:
                return total


def _ffmpeg_to_wav(p: Path, dst: Path, sample_rate: int) -> int:
    import imageio_ffmpeg
    import soundfile as sf

    cmd = [
        imageio_ffmpeg.get_ffmpeg_exe(), "-nostdin", "-v", "error", "-y", "-i", str(p),
        "-vn", "-ac", "1", "-ar", str(sample_rate), "-c:a", "pcm_f32le", "-f", "wav", str(dst),
    ]  # fmt: skip
    try:
        proc = subprocess.run(cmd, capture_output=True, timeout=3600)
    except subprocess.TimeoutExpired:
        raise InputError(f"{p}: decoding took too long") from None
    if proc.returncode != 0 or not dst.exists():
        lines = proc.stderr.decode(errors="replace").strip().splitlines()
        reason = lines[-1].split(": ", 1)[-1] if lines else "no audio stream"
        raise InputError(f"{p}: not a readable audio file ({reason})")
    return sf.info(str(dst)).frames


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


FRAME = 320  # 20 ms at 16 kHz: the frame of the loudness and speech checks


def frame_rms(wave: np.ndarray, frame: int = FRAME) -> np.ndarray:
    """RMS of each whole `frame`-sample frame (a ragged tail is left out)."""
    n = len(wave) // frame
    frames = wave[: n * frame].reshape(n, frame)
    step = 50_000  # frames at a time: no squared copy of an hour of audio
    return np.concatenate(
        [np.sqrt(np.mean(np.square(frames[i : i + step]), axis=1) + 1e-12) for i in range(0, n, step)] or [np.zeros(0)]
    )


def loudness_gain(rms: np.ndarray, target_dbfs: float = -20.0) -> float:
    """The gain that puts the loud half of the frames at `target_dbfs` RMS (at most 40 dB)."""
    if len(rms) == 0:
        return 1.0
    level = float(np.mean(np.sort(rms)[len(rms) // 2 :]))
    return min(10 ** (target_dbfs / 20) / max(level, 1e-9), 100.0)


def apply_gain(wave: np.ndarray, gain: float) -> np.ndarray:
    out = np.multiply(wave, np.float32(gain), dtype=np.float32)  # one copy, even for an hour of audio
    return np.clip(out, -1.0, 1.0, out=out)


def normalize_loudness(wave: np.ndarray, target_dbfs: float = -20.0) -> np.ndarray:
    """Scale so the loud half of 20 ms frames sits at `target_dbfs` RMS: the encoders see the same
    level whether the recording was quiet or hot. Silence stays silence (never amplified past 40 dB)."""
    if len(wave) < FRAME:
        return wave
    return apply_gain(wave, loudness_gain(frame_rms(wave), target_dbfs))


def has_speech(wave: np.ndarray, sample_rate: int = 16000) -> bool:
    """At least a quarter second of speech by a voice-activity detector (`vad`), heard at a normal level."""
    from . import vad

    return vad.has_speech(normalize_loudness(wave), sample_rate)
