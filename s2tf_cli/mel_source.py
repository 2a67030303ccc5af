"""Where `talk` gets its log-mel frames: a clip's whole mel in memory, or a voice decoded to a
temporary WAV on disk and read back a span at a time. The second keeps `talk` on an hour of audio
at the memory of a minute: only the frames of one batch are ever computed at once."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
import torch.nn.functional as F

from . import audio as audio_io
from .config import AudioConfig
from .errors import InputError
from .models.mel import LOG_FLOOR, LogMel


class MelSource(Protocol):
    frames: int

    def span(self, lo: int, hi: int) -> torch.Tensor:
        """(n_mels, hi - lo) frames [lo, hi); frames outside the clip are silence (log of the floor)."""
        ...


def _span(inner, frames: int, n_mels: int, device, lo: int, hi: int) -> torch.Tensor:
    """Frames [lo, hi) from `inner(a, b)` (frames inside the clip), silence outside."""
    a, b = max(lo, 0), min(hi, frames)
    if b <= a:
        return torch.full((n_mels, hi - lo), math.log(LOG_FLOOR), device=device)
    mel = inner(a, b)
    return F.pad(mel, (a - lo, hi - b), value=math.log(LOG_FLOOR)) if (a - lo or hi - b) else mel


def frame_windows(src: MelSource, audio: AudioConfig, fps: float, start: int, stop: int) -> torch.Tensor:
    """(stop-start, n_mels, content_window) mel windows centred on video frames [start, stop) at `fps`: what
    E_s^a hears for each frame (`talk`, and the stages that teach it); frames past the audio hear silence."""
    half = audio.content_window // 2
    mel_rate = audio.sample_rate / audio.hop_length
    centres = [int(round((i + 0.5) / fps * mel_rate)) - half for i in range(start, stop)]
    span = src.span(centres[0], centres[-1] + audio.content_window)
    return torch.stack([span[:, c - centres[0] : c - centres[0] + audio.content_window] for c in centres])


class MemoryMel:
    """A whole clip's mel, already computed."""

    def __init__(self, mel: torch.Tensor):
        self.mel = mel
        self.frames = mel.shape[-1]

    def span(self, lo: int, hi: int) -> torch.Tensor:
        return _span(lambda a, b: self.mel[:, a:b], self.frames, self.mel.shape[0], self.mel.device, lo, hi)


@dataclass
class DecodedVoice:
    """A voice as a 16 kHz mono float32 WAV in a work folder, checked like `pipeline.checked_voice`
    (length, finite samples, speech) and with its loudness gain measured, in one streamed pass (speech in a
    second that stops once it hears enough)."""

    path: Path
    name: str
    samples: int
    sample_rate: int
    gain: float

    BLOCK = audio_io.FRAME * 2000  # 40 s at 16 kHz, whole 20 ms frames

    @classmethod
    def open(cls, voice: str | Path | np.ndarray, workdir: Path, a: AudioConfig) -> DecodedVoice:
        import soundfile as sf

        path = Path(workdir) / "voice.wav"
        if isinstance(voice, np.ndarray):
            name = "<array>"
            if voice.ndim != 1:
                raise InputError(f"{name}: expected mono samples, got shape {voice.shape}")
            sf.write(str(path), voice.astype(np.float32), a.sample_rate, subtype="FLOAT", format="WAV")
        else:
            name = str(voice)
            audio_io.decode_to_wav(voice, path, a.sample_rate)
        rms, samples = [], 0
        with sf.SoundFile(str(path)) as f:
            for block in f.blocks(blocksize=cls.BLOCK, dtype="float32"):
                if not np.all(np.isfinite(block)):
                    raise InputError(f"{name}: audio holds NaN or infinite samples")
                rms.append(audio_io.frame_rms(block))
                samples += len(block)
        duration = samples / a.sample_rate
        if duration < a.min_duration_s:
            raise InputError(
                f"{name}: audio is {duration:.2f} s long; at least {a.min_duration_s} s of speech is needed"
            )
        gain = audio_io.loudness_gain(np.concatenate(rms))
        if not cls._speech_in(path, gain, a.sample_rate):
            raise InputError(f"{name}: no speech found (silence, noise or music without a voice)")
        return cls(path, name, samples, a.sample_rate, gain)

    def speech_probabilities(self) -> np.ndarray:
        """`vad.speech_probabilities` of the whole file, read a block at a time (blocks are whole chunks)."""
        import soundfile as sf

        from . import vad

        with sf.SoundFile(str(self.path)) as f:
            return np.concatenate([vad.speech_probabilities(audio_io.apply_gain(block, self.gain), self.sample_rate)
                                   for block in f.blocks(blocksize=self.BLOCK, dtype="float32")])  # fmt: skip

    @classmethod
    def _speech_in(cls, path: Path, gain: float, sample_rate: int) -> bool:
        """The voice-activity detector over the file block by block, stopping once enough speech is heard."""
        import soundfile as sf

        from . import vad

        heard = 0.0
        with sf.SoundFile(str(path)) as f:
            for block in f.blocks(blocksize=cls.BLOCK, dtype="float32"):
                heard += vad.speech_seconds(audio_io.apply_gain(block, gain), sample_rate)
                if heard >= vad.MIN_SPEECH_S:
                    return True
        return False

    @property
    def duration(self) -> float:
        return self.samples / self.sample_rate

    def read(self, lo: int, hi: int) -> np.ndarray:
        """Loudness-normalised samples [lo, hi) (inside the clip)."""
        import soundfile as sf

        with sf.SoundFile(str(self.path)) as f:
            f.seek(lo)
            return audio_io.apply_gain(f.read(hi - lo, dtype="float32"), self.gain)


class StreamedMel:
    """Mel frames of a `DecodedVoice`, computed span by span from the file."""

    def __init__(self, voice: DecodedVoice, mel: LogMel, device: torch.device):
        self.voice, self.mel, self.device = voice, mel, device
        self.frames = mel.num_frames(voice.samples)

    def _read(self, lo: int, hi: int) -> torch.Tensor:
        return torch.from_numpy(self.voice.read(lo, hi)).to(self.device)[None]

    def span(self, lo: int, hi: int) -> torch.Tensor:
        def inner(a: int, b: int) -> torch.Tensor:
            with torch.inference_mode():
                return self.mel.frames_from(self._read, self.voice.samples, a, b - a)[0]

        return _span(inner, self.frames, self.mel.cfg.n_mels, self.device, lo, hi)
