"""`s2tf data photos DIR... OUT`: face photos without voices as a prepared corpus for stage 1.

Stage 1 needs no audio, and a generator trained on a thousand people draws smears for the identities
between them (unseen photos, unseen voices). Photo folders hold many more people than any talking
corpus. Each person becomes one silent "clip" whose frames are their photos, cropped by the same
detector and crop as `data prepare` and inference, in the shard format `Corpus` reads: every
identity is in the train split with no ArcFace label (-1), so only reconstruction and D see them.
People already in a talking corpus (`--exclude`) are left out, so its val and test people stay unseen.
"""

from __future__ import annotations

import csv
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..corpus_format import is_corpus, read_manifest, write_manifest
from .jobs import run_jobs
from .sources import Identity, face_identities

log = logging.getLogger(__name__)


@dataclass
class PhotoOptions:
    out: Path
    size: int = 128
    max_photos: int = 8  # per person
    limit: int = 0  # people in all (0: every one found)
    exclude: list[Path] = field(default_factory=list)  # corpora (raw or prepared) whose people to leave out
    workers: int = 2
    jpeg_quality: int = 95


def excluded_identities(folders: list[Path]) -> set[str]:
    """Identity names of raw trees (meta.csv or <identity>/ folders) and prepared corpora (manifest.jsonl)."""
    names: set[str] = set()
    for folder in folders:
        folder = Path(folder)
        meta = folder / "meta.csv"
        if is_corpus(folder):
            names |= {row["identity"] for row in read_manifest(folder)}
        elif meta.is_file():
            with open(meta, newline="") as fh:
                names |= {row["identity"] for row in csv.DictReader(fh)}
        elif folder.is_dir():
            names |= {p.name for p in folder.iterdir() if p.is_dir()}
        else:
            raise FileNotFoundError(f"{folder}: no such corpus to exclude")
    return names


def photo_people(folders: list[Path], opts: PhotoOptions) -> list[Identity]:
    skip = excluded_identities(opts.exclude)
    people = [p for folder in folders for p in face_identities(folder) if p.name not in skip]
    return people[: opts.limit] if opts.limit else people


def prepare_person(person: Identity, opts: PhotoOptions) -> tuple[dict | None, str | None]:
    """(manifest row, None) or (None, reason skipped)."""
    import cv2

    from ..errors import S2TFError
    from ..faces import find_face
    from ..images import load_image
    from ..outputs import atomic_path

    rel = Path("clips") / person.name / "photos" / "00000.npz"
    shard = opts.out / rel
    row = {"clip": f"{person.name}/photos/00000", "identity": person.name, "video": "photos", "path": str(rel),
           "gender": person.gender, "ethnicity": person.ethnicity, "voice": "none", "split": "train", "label": -1}  # fmt: skip
    if person.age is not None:
        row["age"] = str(person.age)
    if shard.is_file():
        with np.load(shard, allow_pickle=False) as data:
            return {**row, "frames": int(len(data["offsets"]) - 1), "samples": 0}, None
    blobs = []
    for photo in person.photos:
        if len(blobs) == opts.max_photos:
            break
        try:
            face, _ = find_face(load_image(photo), opts.size)
        except S2TFError:
            continue  # an unreadable photo is one fewer frame
        if face is not None:
            ok, buf = cv2.imencode(".jpg", cv2.cvtColor(face, cv2.COLOR_RGB2BGR),
                                   [cv2.IMWRITE_JPEG_QUALITY, opts.jpeg_quality])  # fmt: skip
            blobs.append(buf.tobytes())
    if not blobs:
        return None, "no face"
    offsets = np.cumsum([0] + [len(b) for b in blobs]).astype(np.int64)
    shard.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(shard) as part:
        with open(part, "wb") as fh:
            np.savez(fh, jpeg=np.frombuffer(b"".join(blobs), np.uint8), offsets=offsets,
                     audio=np.zeros(0, np.int16), fps=np.array(25.0), sample_rate=np.array(16000),
                     size=np.array(opts.size))  # fmt: skip
    return {**row, "frames": len(blobs), "samples": 0}, None


def _run_one(args):
    person, opts = args
    try:
        return person, *prepare_person(person, opts)
    except Exception as exc:  # never lose the whole run to one person
        return person, None, f"error: {type(exc).__name__}: {exc}"


def prepare_photos(
    folders: list[Path], opts: PhotoOptions, progress=None, people: list[Identity] | None = None
) -> dict:
    people = photo_people(folders, opts) if people is None else people
    if not people:
        raise FileNotFoundError(f"{', '.join(map(str, folders))}: no photos of people outside the excluded corpora")
    opts.out.mkdir(parents=True, exist_ok=True)
    jobs = [(p, opts) for p in people]
    results = run_jobs(_run_one, jobs, opts.workers, 16, progress)
    rows = [r for _, r, _ in results if r is not None]
    write_manifest(opts.out, rows)
    with open(opts.out / "skipped.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["identity", "reason"])
        writer.writerows((p.name, why) for p, r, why in results if r is None)
    summary = {"identities": len(rows), "photos": sum(r["frames"] for r in rows), "skipped": len(results) - len(rows),
               "size": opts.size, "kind": "photos"}  # fmt: skip
    (opts.out / "corpus.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary
