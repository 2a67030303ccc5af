"""A synthetic voice per identity: espeak-ng settings partly set by the face's labels (gender, age),
partly random, plus a timbre shift (vocal-tract length and spectral tilt), so that a voice carries
identity information the way real voices do: consistently within a person, varied across people."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from .espeak import Espeak, Phoneme
from .sources import Identity

MALE_VARIANTS = ["m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8"]
FEMALE_VARIANTS = ["f1", "f2", "f3", "f4", "f5"]


@dataclass
class VoiceProfile:
    variant: str  # espeak-ng voice, e.g. "en+m3"
    pitch: int  # 0-99
    pitch_range: int  # 0-99
    rate: int  # words per minute
    wordgap: int  # extra pause between words, 10 ms units
    tract: float  # vocal-tract scale: >1 shifts formants and pitch up
    tilt: float  # first-order spectral tilt, -0.5 (dark) to 0.5 (bright)

    def to_dict(self) -> dict:
        return asdict(self)


def voice_profile(identity: Identity, rng: np.random.Generator, apparent_gender: str | None = None) -> VoiceProfile:
    """`apparent_gender` (the face's, by a classifier) stands in for a missing gender label."""
    gender = identity.gender if identity.gender in ("male", "female") else apparent_gender
    if gender not in ("male", "female"):
        gender = rng.choice(["male", "female"])
    age = identity.age if identity.age is not None else int(rng.integers(20, 60))
    # Pitch settings put the median F0 where adult speech has it (RAVDESS: men ~110-165 Hz, women
    # ~185-235 Hz); espeak's male voices at its default settings are far deeper than real men.
    if gender == "male":
        variant, pitch = str(rng.choice(MALE_VARIANTS)), rng.normal(70, 12)
        tract = rng.normal(0.96, 0.03)
    else:
        variant, pitch = str(rng.choice(FEMALE_VARIANTS)), rng.normal(55, 10)
        tract = rng.normal(1.04, 0.03)
    if age < 13:  # children: higher and shorter tract
        pitch, tract = pitch + 15, tract + 0.08
    elif age > 60:
        pitch -= 6
    rate = rng.normal(165 - max(0, age - 50) * 0.8, 15)
    return VoiceProfile(
        variant=f"en+{variant}",
        pitch=int(np.clip(pitch, 5, 95)),
        pitch_range=int(np.clip(rng.normal(50, 15), 10, 95)),
        rate=int(np.clip(rate, 110, 220)),
        wordgap=int(rng.integers(0, 3)),
        tract=float(np.clip(tract, 0.85, 1.2)),
        tilt=float(np.clip(rng.normal(0, 0.2), -0.5, 0.5)),
    )


def speak(
    text: str, profile: VoiceProfile, sample_rate: int = 16000, seed: int = 0
) -> tuple[np.ndarray, list[Phoneme]]:
    """Speech at `sample_rate` and its phonemes, timbre-shifted by the profile."""
    import soxr

    engine = Espeak.get()
    wave, sr, phonemes = engine.synth(
        text, profile.variant, rate=profile.rate, pitch=profile.pitch, pitch_range=profile.pitch_range,
        wordgap=profile.wordgap, seed=seed,
    )  # fmt: skip
    # Vocal-tract scaling: read the samples as if recorded at sr * tract (pitch and formants x tract,
    # duration / tract), then resample to the target rate.
    wave = soxr.resample(wave, sr * profile.tract, sample_rate).astype(np.float32)
    phonemes = [Phoneme(p.symbol, p.start / profile.tract) for p in phonemes]
    if profile.tilt:
        wave = wave.copy()
        wave[1:] += profile.tilt * wave[:-1]
    peak = np.abs(wave).max() if wave.size else 0
    return (wave / peak * 0.5 if peak > 0 else wave).astype(np.float32), phonemes
