"""espeak-ng through ctypes: synthesised speech with each phoneme's start time.

The command line's --pho prints nothing for ordinary voices, but the library reports phoneme
events with their audio position when initialised with espeakINITIALIZE_PHONEME_EVENTS.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from ctypes import CFUNCTYPE, POINTER, Structure, Union, c_char, c_char_p, c_int, c_short, c_uint, c_void_p
from dataclasses import dataclass

import numpy as np

from ..errors import MissingDependencyError

AUDIO_OUTPUT_SYNCHRONOUS = 2
INITIALIZE_PHONEME_EVENTS = 1
EVENT_LIST_TERMINATED, EVENT_PHONEME = 0, 7
POS_CHARACTER = 1
PARAM = {"rate": 1, "volume": 2, "pitch": 3, "range": 4, "wordgap": 7}


class _EventId(Union):
    _fields_ = [("number", c_int), ("name", c_char_p), ("string", c_char * 8)]


class _Event(Structure):
    _fields_ = [
        ("type", c_int), ("unique_identifier", c_uint), ("text_position", c_int), ("length", c_int),
        ("audio_position", c_int), ("sample", c_int), ("user_data", c_void_p), ("id", _EventId),
    ]  # fmt: skip


_CALLBACK = CFUNCTYPE(c_int, POINTER(c_short), c_int, POINTER(_Event))


class EspeakUnavailable(MissingDependencyError):
    pass


def _load_library() -> ctypes.CDLL:
    name = ctypes.util.find_library("espeak-ng") or "libespeak-ng.so.1"
    try:
        return ctypes.CDLL(name)
    except OSError:
        raise EspeakUnavailable("espeak-ng is not installed (Debian/Ubuntu: apt-get install espeak-ng)") from None


def require_espeak() -> None:
    """Fail before any work starts; loading the library does not initialise it, so the forked
    synthesis workers still each start from espeak-ng's fresh state."""
    _load_library()


@dataclass
class Phoneme:
    symbol: str
    start: float  # seconds


class Espeak:
    """One per process (the library is process-global)."""

    _instance: Espeak | None = None

    def __init__(self) -> None:
        self.lib = _load_library()
        self.sample_rate = self.lib.espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, 500, None, INITIALIZE_PHONEME_EVENTS)
        if self.sample_rate <= 0:
            raise EspeakUnavailable("espeak-ng failed to initialise (is espeak-ng-data installed?)")
        self._chunks: list[np.ndarray] = []
        self._phonemes: list[Phoneme] = []
        self._callback = _CALLBACK(self._on_synth)  # keep a reference: ctypes does not
        self.lib.espeak_SetSynthCallback(self._callback)
        self.lib.espeak_Synth.argtypes = [
            c_char_p, ctypes.c_size_t, c_uint, c_int, c_uint, c_uint, POINTER(c_uint), c_void_p,
        ]  # fmt: skip

    @classmethod
    def get(cls) -> Espeak:
        if cls._instance is None:
            cls._instance = cls()
        return cls._instance

    def _on_synth(self, wav, count, events) -> int:
        if count > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(count,)).copy())
        i = 0
        while events[i].type != EVENT_LIST_TERMINATED:
            ev = events[i]
            if ev.type == EVENT_PHONEME:
                symbol = ev.id.string.decode("ascii", errors="replace")
                self._phonemes.append(Phoneme(symbol, ev.audio_position / 1000.0))
            i += 1
        return 0

    def synth(
        self,
        text: str,
        voice: str,
        rate: int = 160,
        pitch: int = 50,
        pitch_range: int = 50,
        wordgap: int = 0,
        seed: int = 0,
    ) -> tuple[np.ndarray, int, list[Phoneme]]:
        """(float32 samples, sample rate, phonemes with start times). espeak-ng draws its small random
        variations from libc's rand(), so seeding that makes the output deterministic."""
        ctypes.CDLL(None).srand(ctypes.c_uint(seed & 0xFFFFFFFF))
        if self.lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise ValueError(f"espeak-ng has no voice {voice!r}")
        for key, value in (("rate", rate), ("pitch", pitch), ("range", pitch_range), ("wordgap", wordgap)):
            self.lib.espeak_SetParameter(PARAM[key], int(value), 0)
        self._chunks, self._phonemes = [], []
        data = text.encode("utf-8") + b"\0"
        self.lib.espeak_Synth(data, len(data), 0, POS_CHARACTER, 0, 0, None, None)
        self.lib.espeak_Synchronize()
        wave = np.concatenate(self._chunks).astype(np.float32) / 32768.0 if self._chunks else np.zeros(0, np.float32)
        return wave, self.sample_rate, list(self._phonemes)
