"""Head-pose and mouth labels for a face set (`pose.csv` beside `faces.npy`), read off MediaPipe's FaceMesh.

Why a second landmark network: E_ir^v is taught to carry pose with these labels, while `s2tf eval-people`
judges pose with dlib's 68 landmarks; a model trained on the judge's own readings would be scored by its
teacher. FaceMesh (468 points, its own detector) agrees with dlib on yaw at r = 0.97 over 293 face-set
photos, on pitch at 0.88 and on roll at 0.91 (docs/training-real-people.md, "Pose labels").

The measures are the judge's definitions on FaceMesh's points: yaw is the nose tip's offset from the eyes'
midpoint over the eye distance, pitch its drop below that midpoint over the eye distance (both in the
face's de-rolled frame), roll the eye line's angle in radians; the mouth opening is the inner lips' gap over
their corners' distance (E_ir^v on 64 px photos reads it at r = 0.32 untaught, so G cannot be told it).

mediapipe 0.10.14 pins protobuf<5 and its own OpenCV, so it usually lives in an environment of its own;
this module imports neither torch nor anything else of s2tf's heavy dependencies and runs there as
`python -m s2tf_cli.data.pose_labels FACESET`.
"""

from __future__ import annotations

import csv
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

# FaceMesh indices: each eye's outer and inner corner, and the nose tip.
RIGHT_EYE = (33, 133)
LEFT_EYE = (263, 362)
NOSE_TIP = 4
UPPER_LIP, LOWER_LIP = 13, 14  # the inner lips' midpoints
MOUTH_CORNERS = (78, 308)  # the inner lips' corners
LABEL_SIZE = 256  # face-set crops are upscaled to this before FaceMesh (it finds 99.7 % of 128 px crops)
FIELDS = ("index", "yaw", "pitch", "roll", "mouth")
INSTALL = (
    "pose labels need mediapipe 0.10.14 (it pins protobuf<5, so best in an environment of its own): "
    "python -m venv mp && mp/bin/pip install mediapipe==0.10.14 && mp/bin/pip install --no-deps -e . && "
    "mp/bin/python -m s2tf_cli.data.pose_labels FACESET"
)


def pose_of(right_eye: np.ndarray, left_eye: np.ndarray, nose: np.ndarray) -> tuple[float, float, float]:
    """(yaw, pitch, roll) from the two eye centres (the image's left one first) and the nose tip, in pixels,
    as the module docstring defines them: the one definition for labels and for the pose judge."""
    right, left, nose = (np.asarray(v, np.float64)[:2] for v in (right_eye, left_eye, nose))
    mid = (right + left) / 2
    d = left - right
    dist = float(np.hypot(*d))
    roll = float(np.arctan2(d[1], d[0]))
    c, s = np.cos(-roll), np.sin(-roll)  # yaw and pitch in the face's own (de-rolled) frame
    off = nose - mid
    off = np.array([c * off[0] - s * off[1], s * off[0] + c * off[1]])
    return float(off[0] / dist), float(off[1] / dist), roll


def pose_from_mesh(points: np.ndarray) -> tuple[float, float, float]:
    """(yaw, pitch, roll) of FaceMesh points ((468, 2+) in pixels)."""
    p = np.asarray(points, np.float64)[:, :2]
    return pose_of(p[list(RIGHT_EYE)].mean(0), p[list(LEFT_EYE)].mean(0), p[NOSE_TIP])


def mouth_from_mesh(points: np.ndarray) -> float:
    """How open the mouth is: the inner lips' gap over the inner corners' distance (FaceMesh points)."""
    p = np.asarray(points, np.float64)[:, :2]
    width = float(np.linalg.norm(p[MOUTH_CORNERS[0]] - p[MOUTH_CORNERS[1]]))
    return float(np.linalg.norm(p[UPPER_LIP] - p[LOWER_LIP])) / width if width > 0 else float("nan")


class FaceMeshPose:
    """FaceMesh on one RGB crop: its (yaw, pitch, roll, mouth opening), or None where it finds no face."""

    def __init__(self) -> None:
        try:
            import mediapipe as mp
        except ImportError:
            raise ImportError(INSTALL) from None
        self._mesh = mp.solutions.face_mesh.FaceMesh(
            static_image_mode=True, max_num_faces=1, refine_landmarks=False, min_detection_confidence=0.3
        )

    def __call__(self, image: np.ndarray) -> tuple[float, float, float] | None:
        import cv2

        size = image.shape[0]
        if size < LABEL_SIZE:
            image = cv2.resize(image, (LABEL_SIZE, LABEL_SIZE), interpolation=cv2.INTER_CUBIC)
        found = self._mesh.process(np.ascontiguousarray(image))
        if not found.multi_face_landmarks:
            return None
        h, w = image.shape[:2]
        pts = np.array([[q.x * w, q.y * h] for q in found.multi_face_landmarks[0].landmark])
        return (*pose_from_mesh(pts), mouth_from_mesh(pts))


def label_faceset(
    folder: str | Path,
    estimator: Callable[[np.ndarray], tuple[float, float, float] | None] | None = None,
    progress: Callable[[int], None] | None = None,
) -> dict:
    """Write `pose.csv` (one row per faces.npy row; empty where no face was found) into a face set.
    `estimator` gives (yaw, pitch, roll) or (yaw, pitch, roll, mouth opening)."""
    folder = Path(folder)
    if not (folder / "faces.npy").is_file():
        raise FileNotFoundError(f"{folder}: not a face set (no faces.npy; build one with `s2tf data faces`)")
    estimator = estimator or FaceMeshPose()
    faces = np.load(folder / "faces.npy", mmap_mode="r")
    tmp = folder / "pose.csv.part"
    found = 0
    with open(tmp, "w", newline="") as f:
        out = csv.writer(f)
        out.writerow(FIELDS)
        for i in range(len(faces)):
            pose = estimator(np.ascontiguousarray(faces[i]))
            found += pose is not None
            values = [f"{v:.5f}" for v in pose] if pose is not None else []
            out.writerow([i, *values, *[""] * (len(FIELDS) - 1 - len(values))])
            if progress:
                progress(1)
    tmp.replace(folder / "pose.csv")
    return {"photos": len(faces), "posed": found}


def _read_labels(folder: str | Path, count: int, fields: tuple[str, ...]) -> np.ndarray:
    """(count, len(fields)) of `pose.csv`'s columns per faces.npy row; NaN where unlabelled or absent."""
    out = np.full((count, len(fields)), np.nan, np.float32)
    path = Path(folder) / "pose.csv"
    if not path.is_file():
        return out
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            i = int(row["index"])
            if 0 <= i < count and all(row.get(k) for k in fields):
                out[i] = [float(row[k]) for k in fields]
    return out


def read_pose(folder: str | Path, count: int) -> np.ndarray:
    """(count, 3) yaw, pitch, roll per faces.npy row from `pose.csv`; NaN where unlabelled or absent."""
    return _read_labels(folder, count, ("yaw", "pitch", "roll"))


def read_mouth(folder: str | Path, count: int) -> np.ndarray:
    """(count,) mouth opening per faces.npy row from `pose.csv`; NaN where unlabelled or absent."""
    return _read_labels(folder, count, ("mouth",))[:, 0]


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m s2tf_cli.data.pose_labels FACESET", file=sys.stderr)
        return 2
    try:
        summary = label_faceset(args[0], progress=_every(1000))
    except (ImportError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(" ".join(f"{k}={v}" for k, v in summary.items()))
    return 0


def _every(n: int) -> Callable[[int], None]:
    done = [0]

    def tick(k: int) -> None:
        done[0] += k
        if done[0] % n == 0:
            print(f"{done[0]} photos", file=sys.stderr, flush=True)

    return tick


if __name__ == "__main__":
    sys.exit(main())
