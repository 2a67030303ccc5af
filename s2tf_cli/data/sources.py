"""Face folders as identities, with whatever labels they carry.

Understood layouts (one `--faces DIR` each, several allowed):
- a folder of identity sub-folders, each holding photos of one person (CelebA here), with an
  optional `identities.csv` (identity, gender, ...);
- a flat folder of photos, one person each; UTKFace names (`age_gender_race_*.jpg`) give labels;
- the RAVDESS layout handled by `real_voice_identities`: `<person>/face.png` + recordings.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from pathlib import Path

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp"}
AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".opus", ".mp3", ".m4a"}
UTK_NAME = re.compile(r"^(\d+)_([01])_([0-4])_")
UTK_RACES = ["white", "black", "asian", "indian", "other"]


@dataclass
class Identity:
    name: str  # unique across sources
    photos: list[Path]
    gender: str = "unknown"  # "male", "female" or "unknown"
    age: int | None = None
    ethnicity: str = "unknown"
    voices: list[Path] = field(default_factory=list)  # real recordings of this person, if any
    source: str = ""


def _read_labels(folder: Path) -> dict[str, dict[str, str]]:
    path = folder / "identities.csv"
    if not path.is_file():
        return {}
    with open(path, newline="") as fh:
        return {row["identity"]: row for row in csv.DictReader(fh)}


def face_identities(folder: str | Path) -> list[Identity]:
    """Identities found in one face folder (sorted by name, so the order is reproducible)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such face folder")
    subdirs = sorted(p for p in folder.iterdir() if p.is_dir())
    out: list[Identity] = []
    if subdirs:
        labels = _read_labels(folder)
        for sub in subdirs:
            photos = sorted(p for p in sub.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            if photos:
                gender = labels.get(sub.name, {}).get("gender", "unknown") or "unknown"
                out.append(Identity(f"{folder.name}-{sub.name}", photos, gender=gender, source=folder.name))
        return out
    for photo in sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES):
        ident = Identity(f"{folder.name}-{photo.name.split('.')[0]}", [photo], source=folder.name)
        m = UTK_NAME.match(photo.name)
        if m:
            ident.age = int(m.group(1))
            ident.gender = "male" if m.group(2) == "0" else "female"
            ident.ethnicity = UTK_RACES[int(m.group(3))]
        out.append(ident)
    return out


def real_voice_identities(folder: str | Path) -> list[Identity]:
    """People with real recordings and a face photo: `<person>/face.png` + audio files (RAVDESS layout).
    Gender from `attributes.csv` (column Male, 1/-1) when present."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such folder")
    genders = {}
    attrs = folder / "attributes.csv"
    if attrs.is_file():
        with open(attrs, newline="") as fh:
            for row in csv.DictReader(fh):
                key = row.get("image_id") or row.get("identity") or ""
                if "Male" in row:
                    genders[key] = "male" if row["Male"].strip() == "1" else "female"
    out = []
    for person in sorted(p for p in folder.iterdir() if p.is_dir()):
        photos = sorted(p for p in person.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        voices = sorted(p for p in person.iterdir() if p.suffix.lower() in AUDIO_SUFFIXES)
        if photos and voices:
            out.append(
                Identity(
                    f"{folder.name}-{person.name}", photos, gender=genders.get(person.name, "unknown"),
                    voices=voices, source=folder.name,
                )
            )  # fmt: skip
    return out
