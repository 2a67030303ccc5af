"""How a talking head moves, read off dlib's 68 landmarks frame by frame: the figures that tell a living
head from a mask, computed the same way for real talking clips and for `talk`'s output.

- head: yaw and pitch per frame (real_people.head_pose); their spread (std over the clip), their speed
  (mean absolute change per second after a 5-frame moving average, so landmark noise is not counted as
  motion) and their jitter (mean absolute deviation of each frame from its neighbours' mean: what shakes
  from one frame to the next).
- blinks: the eye aspect ratio (Soukupova & Cech 2016: lid gaps over eye width, both eyes averaged), after a
  3-frame running median; a blink is a run of frames below BLINK_SHARE of the clip's median ratio lasting at
  least BLINK_MIN_S. Rate per minute, mean length in seconds.
"""

from __future__ import annotations

import numpy as np

BLINK_SHARE = 0.75  # a frame's eye aspect ratio under this share of the clip's median: eyes closing
BLINK_MIN_S = 0.08  # shorter dips are landmark noise (a blink lasts 100-400 ms: 3-10 frames at 25 fps)
SMOOTH = 5  # frames of the moving average before speed


def eye_aspect_ratio(points: np.ndarray) -> float:
    """Mean over both eyes of (|p2-p6| + |p3-p5|) / (2 |p1-p4|) on dlib's 68 points (eyes 36-41, 42-47)."""
    p = np.asarray(points, np.float64)
    ratios = []
    for a in (36, 42):
        e = p[a : a + 6]
        width = np.linalg.norm(e[0] - e[3])
        ratios.append((np.linalg.norm(e[1] - e[5]) + np.linalg.norm(e[2] - e[4])) / (2 * width) if width else np.nan)
    return float(np.mean(ratios))


def _filled(series: np.ndarray) -> np.ndarray:
    """NaN frames (no face found) filled from their neighbours, so a lost frame is no jump."""
    ok = np.isfinite(series)
    if ok.sum() < 2:
        return series
    idx = np.arange(len(series))
    return np.interp(idx, idx[ok], series[ok])


def speed(series: np.ndarray, fps: float) -> float:
    """Mean absolute change per second of the series after a SMOOTH-frame moving average."""
    s = _filled(series)
    if len(s) < SMOOTH + 1:
        return float("nan")
    smooth = np.convolve(s, np.ones(SMOOTH) / SMOOTH, mode="valid")
    return float(np.mean(np.abs(np.diff(smooth))) * fps)


def jitter(series: np.ndarray) -> float:
    """Mean absolute deviation of each frame from the mean of its two neighbours."""
    s = _filled(series)
    if len(s) < 3:
        return float("nan")
    return float(np.mean(np.abs(s[1:-1] - (s[:-2] + s[2:]) / 2)))


def blinks(ear: np.ndarray, fps: float) -> tuple[float, float, int]:
    """(blinks per minute, mean blink length in seconds, count) from a per-frame eye aspect ratio: after a
    3-frame running median (one frame's landmark noise is no blink), runs under BLINK_SHARE of the clip's
    median that last at least BLINK_MIN_S."""
    e = _filled(ear)
    if not np.isfinite(e).any() or len(e) < 3:
        return float("nan"), float("nan"), 0
    e = np.median(np.stack([np.r_[e[:1], e[:-1]], e, np.r_[e[1:], e[-1:]]]), axis=0)
    closed = e < BLINK_SHARE * np.median(e)
    runs, length = [], 0
    for c in closed:
        if c:
            length += 1
        elif length:
            runs.append(length)
            length = 0
    if length:
        runs.append(length)
    runs = [r for r in runs if r >= BLINK_MIN_S * fps]
    minutes = len(e) / fps / 60
    return len(runs) / minutes, (float(np.mean(runs)) / fps if runs else float("nan")), len(runs)


def motion_figures(points: list[np.ndarray | None], fps: float) -> dict:
    """The module's figures for one clip from its per-frame 68 landmarks (None where no face was found)."""
    from .real_people import head_pose

    poses = np.array([head_pose(p)[:2] if p is not None else (np.nan, np.nan) for p in points], np.float64)
    ear = np.array([eye_aspect_ratio(p) if p is not None else np.nan for p in points])
    rate, length, count = blinks(ear, fps)
    out = {"frames": len(points), "found": int(np.isfinite(poses[:, 0]).sum())}
    for k, name in enumerate(("yaw", "pitch")):
        found = poses[np.isfinite(poses[:, k]), k]
        out[f"{name} spread"] = float(np.std(found)) if len(found) > 1 else float("nan")
        out[f"{name} speed"] = speed(poses[:, k], fps)
        out[f"{name} jitter"] = jitter(poses[:, k])
    out |= {"blinks per min": rate, "blink s": length, "blinks": count}
    return out


MOTION_KEYS = ("yaw spread", "yaw speed", "pitch spread", "pitch speed", "yaw jitter", "pitch jitter",
               "blinks per min", "blink s", "identity first-last", "identity least")  # fmt: skip
IDENTITY_EVERY = 5  # frames between the faces compared with the first for "identity least"


def clip_motion(frames: np.ndarray, fps: float, landmarks, embedder) -> dict:
    """motion_figures of a clip's frames, the judge's cosine between its first and last face, and the least
    cosine of any face (every IDENTITY_EVERY-th frame and the last) to the first: a face that changes in
    the middle (glasses that come and go) and comes back is caught by the second, not the first."""
    from .protocol import frame_landmarks

    out = motion_figures(frame_landmarks(frames, landmarks), fps)
    picks = sorted(set(range(0, len(frames), IDENTITY_EVERY)) | {len(frames) - 1})
    e = np.asarray(embedder.embed_many([frames[i] for i in picks]), np.float64)
    cos = e @ e[0] / (np.linalg.norm(e, axis=1) * np.linalg.norm(e[0]) + 1e-12)
    out["identity first-last"] = float(cos[-1])
    out["identity least"] = float(cos.min())
    return out


def _medians(rows: list[dict]) -> dict:
    out = {}
    for k in MOTION_KEYS:
        values = [r[k] for r in rows if r[k] == r[k]]
        out[f"head {k}"] = float(np.median(values)) if values else float("nan")
    return out


def _judges(landmarks, embedder):
    if landmarks is None:
        from ..judges.landmarks import landmarks68 as landmarks
    if embedder is None:
        from ..judges.embedder import FaceEmbedder

        embedder = FaceEmbedder()
    return landmarks, embedder


def real_motion(clips: list, fps: float = 25.0, landmarks=None, embedder=None) -> dict:
    """The real talking clips' own figures: medians over clips and each one's range (min, max)."""
    from ..face_track import read_video

    landmarks, embedder = _judges(landmarks, embedder)
    rows = [clip_motion(read_video(clip, fps), fps, landmarks, embedder) for clip in clips]
    out = _medians(rows)
    for k in MOTION_KEYS:
        values = [r[k] for r in rows if r[k] == r[k]]
        out[f"head {k} range"] = (min(values), max(values)) if values else (float("nan"), float("nan"))
    out["head per clip"] = {str(getattr(c, "name", c)): r for c, r in zip(clips, rows)}
    return out


def talking_motion(s2tf, clips: list, fps: float = 25.0, landmarks=None, embedder=None) -> dict:
    """`talk`'s figures: each real clip's audio talked with its first frame as the still `--pose` and natural
    motion (the head is the model's to move); medians over clips."""
    from .. import audio as audio_io
    from ..face_track import read_video

    landmarks, embedder = _judges(landmarks, embedder)
    rows = []
    for clip in clips:
        first = read_video(clip, fps)[0]
        wave = audio_io.load_audio(clip, s2tf.cfg.audio.sample_rate)
        _, frames = s2tf.talk_frames(wave, pose=first, fps=fps, motion="natural")
        rows.append(clip_motion(np.stack(list(frames)), fps, landmarks, embedder))
    out = _medians(rows)
    out["head per clip"] = {str(getattr(c, "name", c)): r for c, r in zip(clips, rows)}
    return out
