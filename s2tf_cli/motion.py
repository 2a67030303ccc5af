"""Head motion from the voice, for `talk` without a pose video: a head that drifts, nods on stressed
syllables and settles in pauses, written into f_ir's pose entries (weights whose GAN stage taught pose).

A stated model, not a learnt one (there are three real talking clips at hand, too few to learn from),
causal so that streams and the live page can use it too. Per frame, at the video's rate:

- speech activity: the frame's log-mel energy between a slow silence floor and a slow peak, 0-1;
- drift: an Ornstein-Uhlenbeck process per axis (time constant `drift_s`), its spread `drift` while
  speaking and `quiet` of that in pauses: the head wanders and comes back, never far;
- accents: where the eased activity rises (a stressed syllable), the head dips (pitch) by `nod` times the rise
  and turns a little (yaw, `turn`) in a direction that holds for a phrase;
- all of it eased (`ease_s`) and then followed by a critically damped spring (`spring_hz`): smooth,
  no frame-to-frame jitter.

Units are the pose judge's (yaw and pitch: nose offsets over the eye distance; roll: radians), so the
parameters compare with what evaluation/motion.py reads off real clips. Drift, nod and turn are set so
that on the three real talking clips' audio the stated motion's median spread and speed (yaw 0.19 and
0.37/s, pitch 0.071 and 0.22/s) lie inside those clips' own (yaw 0.066-0.192 and 0.23-0.50/s, pitch
0.048-0.113 and 0.17-0.38/s). Yaw is stated near the top of that range because G draws less of a turn than
it is asked, as the judge reads it: with yaw stated at 0.13 and 0.27/s, run 22's faces turned 0.077 and
0.17/s, under the real clips' least speed. The weights' `pose_render` asks G for 1/share of the stated
offsets, as the model's own encoder reads its turns back (training/pose_render.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .errors import UsageError

MOTIONS = ("natural", "none")


def check_motion(motion: str) -> str:
    """`motion` itself, or a UsageError naming the choices."""
    if motion not in MOTIONS:
        raise UsageError(f"--motion must be one of {', '.join(MOTIONS)}, not {motion!r}")
    return motion


SPEAKING = 0.25  # speech activity above which a frame counts as speech


@dataclass
class MotionConfig:
    drift: list[float] = field(default_factory=lambda: [0.3, 0.1, 0.06])  # OU spread: yaw, pitch, roll
    drift_s: float = 1.0  # OU time constant in seconds
    quiet: float = 0.25  # drift spread in pauses, as a share of the speaking spread
    nod: float = 0.5  # pitch dip per unit rise of speech activity within `rise_s`
    turn: float = 0.3  # yaw turn per unit rise, sign held over a phrase
    level_s: float = 0.2  # activity eased over this time constant first: nods follow stresses, not syllables
    rise_s: float = 0.3  # window over which a rise of the eased activity counts as an accent
    phrase_s: float = 0.6  # a pause at least this long ends a phrase (the turn's sign is drawn anew)
    spring_hz: float = 2.0  # the spring's natural frequency: how quickly the head follows its target
    ease_s: float = 0.12  # the target is eased first (first-order, this time constant), so it has no corners
    floor_s: float = 4.0  # time constant of the silence floor and speech peak trackers
    limit: list[float] = field(default_factory=lambda: [0.45, 0.3, 0.2])  # never further than this from rest


class HeadMotion:
    """Causal, seeded: `step(energy)` takes each new frame's log-mel energy and returns (n, 3) offsets
    (yaw, pitch, roll) from the rest pose. The same seed and input give the same motion."""

    def __init__(self, fps: float, seed: int = 0, cfg: MotionConfig | None = None):
        self.cfg = cfg or MotionConfig()
        self.dt = 1.0 / fps
        self.rng = np.random.default_rng([7919, seed])
        self.drift = np.zeros(3)
        self.aim = np.zeros(3)
        self.pos = np.zeros(3)
        self.vel = np.zeros(3)
        self.floor: float | None = None
        self.peak: float | None = None
        self.level = 0.0
        self.history: list[float] = []
        self.quiet_for = math.inf
        self.sign = 1.0

    def _activity(self, energy: float) -> float:
        c = self.cfg
        if self.floor is None:
            self.floor, self.peak = energy, energy + 1.0
        a = self.dt / c.floor_s
        # the floor falls at once and rises slowly; the peak the other way round
        self.floor = energy if energy < self.floor else self.floor + a * (energy - self.floor)
        self.peak = energy if energy > self.peak else self.peak + a * (energy - self.peak)
        span = max(self.peak - self.floor, 1.0)
        return float(np.clip((energy - self.floor) / span, 0.0, 1.0))

    def step(self, energy: np.ndarray) -> np.ndarray:
        c = self.cfg
        out = np.zeros((len(energy), 3))
        keep = max(1, round(c.rise_s / self.dt))
        theta = self.dt / c.drift_s
        omega = 2 * math.pi * c.spring_hz
        spread = np.asarray(c.drift)
        limit = np.asarray(c.limit)
        for i, e in enumerate(np.asarray(energy, np.float64)):
            act = self._activity(float(e))
            self.level += (act - self.level) * min(1.0, self.dt / c.level_s)  # syllables merged into stresses
            self.history = (self.history + [self.level])[-(keep + 1) :]
            rise = max(0.0, self.level - self.history[0])
            speaking = act > SPEAKING
            if speaking:
                if self.quiet_for >= c.phrase_s:  # a new phrase: its turns go one way
                    self.sign = float(self.rng.choice([-1.0, 1.0]))
                self.quiet_for = 0.0
            else:
                self.quiet_for += self.dt
            sigma = spread * (1.0 if speaking else c.quiet)
            self.drift += -theta * self.drift + sigma * math.sqrt(2 * theta) * self.rng.standard_normal(3)
            target = self.drift + np.array([self.sign * c.turn * rise, c.nod * rise, 0.0])
            target = np.clip(target, -limit, limit)
            self.aim += (target - self.aim) * min(1.0, self.dt / c.ease_s)  # no corner for the spring to follow
            # critically damped spring toward the target (semi-implicit Euler)
            self.vel += (omega**2 * (self.aim - self.pos) - 2 * omega * self.vel) * self.dt
            self.pos += self.vel * self.dt
            out[i] = self.pos
        return out
