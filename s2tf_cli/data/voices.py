"""A synthetic voice per identity: espeak-ng settings partly set by the face's labels (gender, age),
partly random, plus a timbre shift (vocal-tract length and spectral tilt), so that a voice carries
identity information the way real voices do: consistently within a person, varied across people.

By labels alone a voice says nothing about a face beyond gender and age: for unseen people no model
can then rank their faces better than a label oracle. `face_share` > 0 ties part of the voice to the
face itself, as real voices are tied to skull and vocal-tract shape: pitch, vocal-tract scale, tilt
and rate each take that share of their spread from one direction of the face's dlib embedding."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from .espeak import Espeak, Phoneme
from .sources import Identity

MALE_VARIANTS = ["m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8"]
FEMALE_VARIANTS = ["f1", "f2", "f3", "f4", "f5"]


# Four fixed directions in dlib's 128-d face-embedding space and the projections' population mean and
# spread, measured on 400 random CelebA + UTKFace photos (within one person the spread is about half).
FACE_DIRECTIONS_SEED = 2021
FACE_PROJECTION_MEAN = np.array([-0.0978, 0.0145, -0.0179, 0.054])
FACE_PROJECTION_SD = np.array([0.0496, 0.0457, 0.0493, 0.0528])


def face_directions() -> np.ndarray:
    d = np.random.default_rng(FACE_DIRECTIONS_SEED).standard_normal((4, 128))
    return d / np.linalg.norm(d, axis=1, keepdims=True)


def face_scores(embeddings: np.ndarray) -> np.ndarray:
    """Four population z-scores of a person's mean face embedding (their photos' rows)."""
    mean = np.asarray(embeddings, dtype=np.float64).reshape(-1, 128).mean(0)
    return (face_directions() @ mean - FACE_PROJECTION_MEAN) / FACE_PROJECTION_SD


def _mix(value: float, mean: float, sd: float, z: float, share: float) -> float:
    """`value` (drawn around `mean` with spread `sd`) with `share` of its spread replaced by z: the
    population spread stays the same, the correlation with z becomes `share`."""
    return mean + (value - mean) * float(np.sqrt(1.0 - share**2)) + sd * share * float(z)


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


def voice_profile(
    identity: Identity,
    rng: np.random.Generator,
    apparent_gender: str | None = None,
    *,
    face_z: np.ndarray | None = None,
    face_share: float = 0.0,
) -> VoiceProfile:
    """`apparent_gender` (the face's, by a classifier) stands in for a missing gender label; `face_z`
    (`face_scores`) sets `face_share` of pitch, tract, tilt and rate. The random draws are the same
    with and without it, so a corpus made with share 0 is the one made before the option existed."""
    if not 0.0 <= face_share <= 1.0:
        raise ValueError(f"face_share must be in [0, 1], not {face_share}")
    if face_share and face_z is None:
        raise ValueError("face_share > 0 needs the face's scores (face_z)")
    gender = identity.gender if identity.gender in ("male", "female") else apparent_gender
    if gender not in ("male", "female"):
        gender = rng.choice(["male", "female"])
    age = identity.age if identity.age is not None else int(rng.integers(20, 60))
    # Pitch settings put the median F0 where adult speech has it (RAVDESS: men ~110-165 Hz, women
    # ~185-235 Hz); espeak's male voices at its default settings are far deeper than real men.
    if gender == "male":
        variant, pitch = str(rng.choice(MALE_VARIANTS)), rng.normal(70, 12)
        tract = rng.normal(0.96, 0.03)
        pitch_mean, pitch_sd, tract_mean = 70, 12, 0.96
    else:
        variant, pitch = str(rng.choice(FEMALE_VARIANTS)), rng.normal(55, 10)
        tract = rng.normal(1.04, 0.03)
        pitch_mean, pitch_sd, tract_mean = 55, 10, 1.04
    if face_share:
        pitch = _mix(pitch, pitch_mean, pitch_sd, face_z[0], face_share)
        tract = _mix(tract, tract_mean, 0.03, face_z[1], face_share)
    if age < 13:  # children: higher and shorter tract
        pitch, tract = pitch + 15, tract + 0.08
    elif age > 60:
        pitch -= 6
    rate_mean = 165 - max(0, age - 50) * 0.8
    rate = rng.normal(rate_mean, 15)
    pitch_range = rng.normal(50, 15)
    wordgap = int(rng.integers(0, 3))
    tilt = rng.normal(0, 0.2)
    if face_share:
        tilt = _mix(tilt, 0.0, 0.2, face_z[2], face_share)
        rate = _mix(rate, rate_mean, 15, face_z[3], face_share)
    return VoiceProfile(
        variant=f"en+{variant}",
        pitch=int(np.clip(pitch, 5, 95)),
        pitch_range=int(np.clip(pitch_range, 10, 95)),
        rate=int(np.clip(rate, 110, 220)),
        wordgap=wordgap,
        tract=float(np.clip(tract, 0.85, 1.2)),
        tilt=float(np.clip(tilt, -0.5, 0.5)),
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
