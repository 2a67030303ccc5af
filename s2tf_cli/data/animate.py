"""Animating a still face photo: the mouth opens with the speech, the head drifts independently.

The mouth follows an openness curve (one value per video frame, 0 closed .. 1 wide open), from
phoneme timings (synthesised speech) or from the loudness envelope (real recordings). The lower
lip and jaw are displaced downwards by a smooth field around the 68-point landmarks, the gap
between the lips is drawn as a dark mouth interior with a hint of upper teeth, then the whole
frame is rotated, shifted and scaled by a slow random drift.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..images import soft_pad
from .espeak import Phoneme

# Mouth openness per espeak-ng phoneme (first letters), closed for bilabials and pauses.
_OPEN = [("aa", 1.0), ("a", 1.0), ("A", 1.0), ("V", 0.9), ("O", 0.8), ("0", 0.8), ("o", 0.75), ("3", 0.6),
         ("@", 0.55), ("E", 0.7), ("e", 0.65), ("I", 0.4), ("i", 0.4), ("U", 0.45), ("u", 0.4), ("w", 0.25),
         ("p", 0.0), ("b", 0.0), ("m", 0.0), ("f", 0.1), ("v", 0.1), ("_", 0.0)]  # fmt: skip
_CONSONANT = 0.25


def phoneme_openness(symbol: str) -> float:
    for prefix, value in _OPEN:
        if symbol.startswith(prefix):
            return value
    return _CONSONANT


def _smooth(curve: np.ndarray) -> np.ndarray:
    if len(curve) < 3:
        return curve
    padded = np.pad(curve, 1, mode="edge")
    return 0.25 * padded[:-2] + 0.5 * padded[1:-1] + 0.25 * padded[2:]


def openness_from_phonemes(phonemes: list[Phoneme], duration: float, fps: float, offset: float = 0.0) -> np.ndarray:
    """One value per frame of a clip of `duration` s; phoneme times are shifted by `offset` s."""
    n = int(np.ceil(duration * fps - 1e-9))
    out = np.zeros(n, np.float32)
    starts = np.array([p.start + offset for p in phonemes])
    values = np.array([phoneme_openness(p.symbol) for p in phonemes])
    for i in range(n):
        t = (i + 0.5) / fps
        k = np.searchsorted(starts, t, side="right") - 1
        if 0 <= k < len(values) and (k + 1 < len(starts) or t - starts[k] < 0.25):
            out[i] = values[k]
    return _smooth(out)


def openness_from_envelope(wave: np.ndarray, sample_rate: int, fps: float) -> np.ndarray:
    """For real speech without phoneme labels: loudness above the noise floor, compressed."""
    hop = sample_rate / fps
    n = int(np.ceil(len(wave) / hop - 1e-9))
    rms = np.array([np.sqrt(np.mean(wave[int(i * hop) : int((i + 1) * hop)] ** 2) + 1e-12) for i in range(n)])
    db = 20 * np.log10(rms)
    floor, top = np.percentile(db, 10), np.percentile(db, 95)
    level = np.clip((db - floor - 6) / max(top - floor - 6, 1e-3), 0, 1)
    return _smooth(np.sqrt(level).astype(np.float32))


# ------------------------------------------------------------------------------------ drawing
@dataclass
class HeadDrift:
    """Slow random head motion: per parameter, two sinusoids with random frequency and phase."""

    freqs: np.ndarray  # (4, 2) Hz
    phases: np.ndarray  # (4, 2)
    amplitude: np.ndarray  # (4,) rotation deg, dx, dy (fraction of size), log-scale

    @classmethod
    def random(cls, rng: np.random.Generator, strength: float = 1.0) -> HeadDrift:
        return cls(
            rng.uniform(0.08, 0.5, (4, 2)),
            rng.uniform(0, 2 * np.pi, (4, 2)),
            strength * np.array([4.0, 0.03, 0.03, 0.03]) * rng.uniform(0.3, 1.0, 4),
        )

    def at(self, t: float) -> np.ndarray:
        return self.amplitude * np.sin(2 * np.pi * self.freqs * t + self.phases).mean(axis=1)


class FaceAnimator:
    """Renders frames of one photo: `frame(openness, t)` -> (size, size, 3) uint8."""

    def __init__(self, photo: np.ndarray, landmarks: np.ndarray, size: int, drift: HeadDrift, face_fraction=0.5):
        import cv2

        self.size = size
        self.drift = drift
        # Canvas: a square around the face, scaled so the landmark box spans `face_fraction` of it.
        lo, hi = landmarks.min(0), landmarks.max(0)
        centre = (lo + hi) / 2 - np.array([0, 0.08 * (hi - lo)[1]])
        side = max(hi - lo) / face_fraction
        self.canvas_size = int(size * 1.25)
        scale = self.canvas_size / side
        # Tight chips (UTKFace) leave the photo: give it a soft margin instead of replicated streaks.
        h, w = photo.shape[:2]
        pad = int(np.ceil(max(0, side / 2 - centre[0], side / 2 - centre[1],
                              centre[0] + side / 2 - w, centre[1] + side / 2 - h))) + 2  # fmt: skip
        photo, centre, landmarks = soft_pad(photo, pad), centre + pad, landmarks + pad
        m = np.array([[scale, 0, self.canvas_size / 2 - scale * centre[0]],
                      [0, scale, self.canvas_size / 2 - scale * centre[1]]], np.float32)  # fmt: skip
        self.canvas = cv2.warpAffine(photo, m, (self.canvas_size,) * 2, flags=cv2.INTER_AREA,
                                     borderMode=cv2.BORDER_REPLICATE)  # fmt: skip
        self.pts = landmarks @ m[:, :2].T + m[:, 2]
        p = self.pts
        self.mouth_width = float(np.linalg.norm(p[54] - p[48]))
        self.lip_y = float(p[[60, 64]].mean(0)[1] * 0.5 + p[62, 1] * 0.5)
        self.mouth_x = float(p[48:68, 0].mean())
        self.chin_y = float(p[8, 1])
        ys, xs = np.mgrid[0 : self.canvas_size, 0 : self.canvas_size].astype(np.float32)
        self.xs, self.ys = xs, ys
        gx = np.exp(-(((xs - self.mouth_x) / (0.9 * self.mouth_width)) ** 2))
        ramp = np.clip((ys - self.lip_y) / (0.08 * self.mouth_width), 0, 1)
        fade = np.clip(1 - (ys - self.chin_y) / (0.5 * self.mouth_width), 0, 1)
        self.field = (gx * ramp * fade).astype(np.float32)  # where, and how much, the jaw moves

    def _mouth(self, openness: float) -> np.ndarray:
        import cv2

        amp = 0.32 * self.mouth_width * float(np.clip(openness, 0, 1))
        if amp < 0.5:
            return self.canvas
        warped = cv2.remap(self.canvas, self.xs, self.ys - amp * self.field, cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_REPLICATE)  # fmt: skip
        p = self.pts
        upper = p[[60, 61, 62, 63, 64]]
        lower = p[[64, 65, 66, 67, 60]].copy()
        gx = np.exp(-(((lower[:, 0] - self.mouth_x) / (0.9 * self.mouth_width)) ** 2))
        lower[:, 1] += amp * gx
        poly = np.concatenate([upper, lower]).astype(np.float32)
        scale = 4  # draw at 4x for smooth edges
        mask = np.zeros((self.canvas_size * scale,) * 2, np.uint8)
        cv2.fillPoly(mask, [np.round(poly * scale).astype(np.int32)], 255, cv2.LINE_AA)
        mask = cv2.resize(mask, (self.canvas_size,) * 2, interpolation=cv2.INTER_AREA).astype(np.float32) / 255
        mask = cv2.GaussianBlur(mask, (3, 3), 0)[..., None]
        interior = np.empty_like(warped, dtype=np.float32)
        interior[:] = (45, 18, 20)
        top = upper[:, 1].max()
        teeth = ((self.ys > top - 1) & (self.ys < top + 0.15 * amp) & (np.abs(self.xs - self.mouth_x) < 0.22 *
                                                                          self.mouth_width))[..., None]  # fmt: skip
        interior = np.where(teeth, np.array([185, 178, 168], np.float32), interior)
        return (warped * (1 - mask) + interior * mask).clip(0, 255).astype(np.uint8)

    def frame(self, openness: float, t: float) -> np.ndarray:
        import cv2

        rot, dx, dy, log_scale = self.drift.at(t)
        c = self.canvas_size / 2
        m = cv2.getRotationMatrix2D((c, c), float(rot), float(np.exp(log_scale)))
        m[:, 2] += np.array([dx, dy]) * self.size - (self.canvas_size - self.size) / 2
        return cv2.warpAffine(self._mouth(openness), m, (self.size, self.size), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_REFLECT)  # fmt: skip
