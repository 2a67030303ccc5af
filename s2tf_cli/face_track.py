"""A face followed through a video: frames decoded at a chosen rate, one smoothed crop box per frame.

Shared by corpus preparation (talking clips) and `talk --pose VIDEO` (the head follows the video), so
both frame faces the way the encoders were trained on.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

DETECT_EVERY = 5  # frames between face detections; boxes are interpolated and smoothed between
VIDEO_SUFFIXES = {".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v"}


def is_video(path) -> bool:
    return isinstance(path, (str, Path)) and Path(path).suffix.lower() in VIDEO_SUFFIXES


def read_video(path: Path, fps: float) -> np.ndarray:
    """(T, H, W, 3) uint8, resampled to `fps` by ffmpeg."""
    import imageio_ffmpeg

    reader = imageio_ffmpeg.read_frames(str(path), output_params=["-r", str(fps)])
    meta = next(reader)
    w, h = meta["size"]
    frames = [np.frombuffer(b, np.uint8).reshape(h, w, 3) for b in reader]
    return np.stack(frames) if frames else np.zeros((0, h, w, 3), np.uint8)


def track_faces(frames: np.ndarray) -> list | None:
    """One smoothed box per frame, or None when no face is found in the clip."""
    from .faces import FaceBox, detect_faces

    keys, boxes = [], []
    for i in list(range(0, len(frames), DETECT_EVERY)) + [len(frames) - 1]:
        found = detect_faces(frames[i])
        if found:
            b = found[0]
            keys.append(i)
            boxes.append([b.x, b.y, b.w, b.h])
    if not keys:
        return None
    boxes = np.array(boxes)
    t = np.arange(len(frames))
    track = np.stack([np.interp(t, keys, boxes[:, j]) for j in range(4)], axis=1)
    k = min(9, len(track))  # moving average over ~0.36 s to remove detector jitter
    kernel = np.ones(k) / k
    padded = np.pad(track, ((k // 2, k - 1 - k // 2), (0, 0)), mode="edge")
    smooth = np.stack([np.convolve(padded[:, j], kernel, mode="valid") for j in range(4)], axis=1)
    return [FaceBox(*row) for row in smooth]


def face_crops(path: Path, fps: float, size: int) -> np.ndarray:
    """(T, size, size, 3) face crops of a video at `fps`, the box smoothed over time."""
    from .errors import InputError, NoFaceError
    from .faces import crop_face

    try:
        frames = read_video(path, fps)
    except (OSError, RuntimeError, StopIteration) as exc:
        raise InputError(
            f"{path}: not a readable video ({str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__})"
        ) from None
    if not len(frames):
        raise InputError(f"{path}: the video has no frames")
    boxes = track_faces(frames)
    if boxes is None:
        raise NoFaceError(f"{path}: no face found in the video")
    return np.stack([crop_face(f, b, size) for f, b in zip(frames, boxes)])
