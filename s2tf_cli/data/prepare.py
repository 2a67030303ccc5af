"""`s2tf data prepare ROOT OUT`: any VoxCeleb2-layout tree -> training shards and a manifest.

ROOT/<identity>/<video>/<clip>.mp4 (+ optional ROOT/meta.csv). For every clip: frames resampled to
25 fps, the face found (the same detector and crop as at inference, boxes smoothed over time)
and cropped to `size`, 16 kHz mono audio. A clip becomes OUT/clips/<identity>/<video>/<clip>.npz
holding the frames as JPEG bytes (offsets alongside) and the audio as int16: no pickles.
Identities are split train/val/test by a hash of their name, so the split never depends on which
other identities are present. Clips with no face or no audio are skipped and counted in
OUT/skipped.csv. Finished shards are kept on a rerun (resumable).
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..corpus_format import write_manifest
from ..face_track import read_video, track_faces
from .jobs import run_jobs

log = logging.getLogger(__name__)

FPS = 25.0
SAMPLE_RATE = 16000


@dataclass
class PrepareOptions:
    root: Path
    out: Path
    size: int = 128  # face crop size (paper: 224)
    workers: int = 2
    val_fraction: float = 0.05
    test_fraction: float = 0.1
    jpeg_quality: int = 95


def split_of(identity: str, val: float, test: float) -> str:
    h = int(hashlib.sha256(identity.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return "test" if h < test else "val" if h < test + val else "train"


def find_clips(root: Path) -> list[Path]:
    return sorted(p for p in root.glob("*/*/*") if p.suffix.lower() in (".mp4", ".mkv", ".avi", ".mov", ".webm"))


def read_meta(root: Path) -> dict[str, dict[str, str]]:
    path = root / "meta.csv"
    if not path.is_file():
        return {}
    with open(path, newline="") as fh:
        return {row["identity"]: row for row in csv.DictReader(fh)}


def read_frames(path: Path) -> np.ndarray:
    """(T, H, W, 3) uint8 at 25 fps."""
    return read_video(path, FPS)


def prepare_clip(clip: Path, opts: PrepareOptions) -> tuple[dict | None, str | None]:
    """(manifest row, None) or (None, reason skipped)."""
    import cv2

    from ..audio import load_audio
    from ..errors import S2TFError
    from ..faces import crop_face
    from ..outputs import atomic_path

    rel = clip.relative_to(opts.root)
    identity, video = rel.parts[0], rel.parts[1]
    shard = opts.out / "clips" / rel.with_suffix(".npz")
    row = {"clip": str(rel.with_suffix("")), "identity": identity, "video": video,
           "path": str(shard.relative_to(opts.out))}  # fmt: skip
    if shard.is_file():
        with np.load(shard, allow_pickle=False) as data:
            return {**row, "frames": int(len(data["offsets"]) - 1), "samples": int(len(data["audio"]))}, None
    try:
        frames = read_frames(clip)
    except Exception as exc:  # an unreadable video is skipped, whatever ffmpeg says
        return None, f"unreadable video ({type(exc).__name__})"
    if len(frames) == 0:
        return None, "no video frames"
    try:
        wave = load_audio(clip, SAMPLE_RATE)
    except S2TFError:
        return None, "no audio"
    track = track_faces(frames)
    if track is None:
        return None, "no face"
    blobs = [
        cv2.imencode(".jpg", cv2.cvtColor(crop_face(f, b, opts.size), cv2.COLOR_RGB2BGR),
                     [cv2.IMWRITE_JPEG_QUALITY, opts.jpeg_quality])[1].tobytes()
        for f, b in zip(frames, track)
    ]  # fmt: skip
    offsets = np.cumsum([0] + [len(b) for b in blobs]).astype(np.int64)
    audio = (np.clip(wave, -1, 1) * 32767).astype(np.int16)
    shard.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(shard) as part:
        with open(part, "wb") as fh:
            np.savez(fh, jpeg=np.frombuffer(b"".join(blobs), np.uint8), offsets=offsets, audio=audio,
                     fps=np.array(FPS), sample_rate=np.array(SAMPLE_RATE), size=np.array(opts.size))  # fmt: skip
    return {**row, "frames": len(blobs), "samples": len(audio)}, None


def _run_one(args):
    clip, opts = args
    try:
        return clip, *prepare_clip(clip, opts)
    except Exception as exc:  # never lose the whole run to one clip
        return clip, None, f"error: {type(exc).__name__}: {exc}"


def prepare_corpus(opts: PrepareOptions, progress=None) -> dict[str, int]:
    clips = find_clips(opts.root)
    if not clips:
        raise FileNotFoundError(f"{opts.root}: no clips in the <identity>/<video>/<clip>.mp4 layout")
    meta = read_meta(opts.root)
    opts.out.mkdir(parents=True, exist_ok=True)
    jobs = [(c, opts) for c in clips]
    results = run_jobs(_run_one, jobs, opts.workers, 4, progress)
    rows = [r for _, r, _ in results if r is not None]
    skipped = [(c, why) for c, r, why in results if r is None]
    train_ids = sorted({r["identity"] for r in rows if split_of(r["identity"], opts.val_fraction,
                                                                  opts.test_fraction) == "train"})  # fmt: skip
    labels = {name: i for i, name in enumerate(train_ids)}
    for r in rows:
        info = meta.get(r["identity"], {})
        r.update({k: info[k] for k in ("gender", "age", "ethnicity", "voice") if info.get(k)})
        r["split"] = split_of(r["identity"], opts.val_fraction, opts.test_fraction)
        r["label"] = labels.get(r["identity"], -1)
    write_manifest(opts.out, rows)
    with open(opts.out / "skipped.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["clip", "reason"])
        writer.writerows((str(c.relative_to(opts.root)), why) for c, why in skipped)
    summary = {
        "clips": len(rows), "skipped": len(skipped), "identities": len({r["identity"] for r in rows}),
        "train_identities": len(train_ids), "size": opts.size,
    }  # fmt: skip
    (opts.out / "corpus.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary
