"""`s2tf data faces DIR... OUT`: every real face photo at hand as one array, for the generator's GAN stage.

A GAN on 2 cores reads tens of thousands of small faces per minute; decoding JPEG shards per step would
cost more than the step. So the photos are cropped once (the same detector and crop as inference), stored
as one uint8 array `faces.npy` (N, S, S, 3) that training memory-maps, with `faces.csv` holding each row's
person, source, labels and split. Validation people (data/holdout.py) are marked `val` here and every
trainer leaves them out.

Understood folders: s2f's layout (`people.csv` + `voxceleb/` and `avspeech/` person folders of
`<clip>.jpg` + `<clip>.opus`), RAVDESS's (`Actor_NN/face.png` + recordings, `attributes.csv`), identity
folders (CelebA) and flat photo folders (UTKFace names give labels).
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .holdout import split_of
from .jobs import run_jobs
from .sources import face_identities, real_voice_identities

COLUMNS = ["index", "person", "source", "gender", "age", "ethnicity", "split", "photo"]


@dataclass
class FacePhoto:
    person: str  # unique across sources: "<source>-<name>"
    source: str  # s2f, ravdess, celeba, utkface, ... (the folder's name for generic folders)
    photo: Path
    gender: str = "unknown"
    age: int = -1
    ethnicity: str = "unknown"

    @property
    def split(self) -> str:
        name = self.person.split("-", 1)[1]
        return split_of(self.source, name)


def is_s2f(folder: Path) -> bool:
    return (folder / "people.csv").is_file() and any((folder / s).is_dir() for s in ("voxceleb", "avspeech"))


def s2f_genders(folder: Path) -> dict[str, str]:
    with open(folder / "people.csv", newline="") as fh:
        return {
            r["person"]: {"m": "male", "f": "female"}.get(r.get("gender", ""), "unknown") for r in csv.DictReader(fh)
        }


def s2f_people(folder: Path) -> list[tuple[str, Path]]:
    """(person, folder) of every s2f person, sorted."""
    return sorted((p.name, p) for sub in ("voxceleb", "avspeech") if (folder / sub).is_dir()
                  for p in (folder / sub).iterdir() if p.is_dir())  # fmt: skip


def photos_in(folder: str | Path) -> list[FacePhoto]:
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such face folder")
    if is_s2f(folder):
        genders = s2f_genders(folder)
        return [FacePhoto(f"s2f-{name}", "s2f", jpg, genders.get(name, "unknown"))
                for name, person in s2f_people(folder)
                for jpg in sorted(person.glob("*.jpg")) if jpg.name != "face.jpg"]  # fmt: skip
    if (folder / "attributes.csv").is_file():
        people = real_voice_identities(folder)
        source = "ravdess"
        return [FacePhoto(f"{source}-{p.name.split('-', 1)[1]}", source, photo, p.gender)
                for p in people for photo in p.photos]  # fmt: skip
    return [FacePhoto(p.name, p.source, photo, p.gender, -1 if p.age is None else p.age, p.ethnicity)
            for p in face_identities(folder) for photo in p.photos]  # fmt: skip


def _crop(args: tuple[Path, int]) -> np.ndarray | None:
    from ..errors import S2TFError
    from ..faces import find_face
    from ..images import load_image

    path, size = args
    try:
        face, _ = find_face(load_image(path), size)
    except S2TFError:
        return None
    return face


def build_faceset(folders: list[Path], out: Path, size: int = 128, workers: int = 2, progress=None) -> dict:
    """Crop every photo into OUT/faces.npy + faces.csv; photos without a face go to skipped.csv."""
    photos = [p for folder in folders for p in photos_in(folder)]
    if not photos:
        raise FileNotFoundError(f"{', '.join(map(str, folders))}: no face photos found")
    out.mkdir(parents=True, exist_ok=True)
    crops = run_jobs(_crop, [(p.photo, size) for p in photos], workers, 32, progress)
    kept = [(p, c) for p, c in zip(photos, crops) if c is not None]
    array = np.lib.format.open_memmap(out / "faces.npy.part", mode="w+", dtype=np.uint8,
                                      shape=(len(kept), size, size, 3))  # fmt: skip
    for i, (_, crop) in enumerate(kept):
        array[i] = crop
    array.flush()
    del array
    (out / "faces.npy.part").replace(out / "faces.npy")
    with open(out / "faces.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(COLUMNS)
        for i, (p, _) in enumerate(kept):
            writer.writerow([i, p.person, p.source, p.gender, p.age, p.ethnicity, p.split, str(p.photo)])
    with open(out / "skipped.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["photo", "reason"])
        writer.writerows((str(p.photo), "no face") for p, c in zip(photos, crops) if c is None)
    summary = {"kind": "faces", "size": size, "photos": len(kept), "skipped": len(photos) - len(kept),
               "people": len({p.person for p, _ in kept}),
               "val_people": len({p.person for p, _ in kept if p.split == "val"}),
               "sources": sorted({p.source for p, _ in kept})}  # fmt: skip
    (out / "faceset.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary
