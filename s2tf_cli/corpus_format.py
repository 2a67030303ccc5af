"""A prepared corpus's index, `manifest.jsonl` (one JSON object a clip: path, identity, split, label, frames,
samples and the person's labels): written by `s2tf data prepare` / `data photos`, read by training, evaluation
and the model card through these functions only."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

MANIFEST = "manifest.jsonl"


def is_corpus(folder: str | Path) -> bool:
    return (Path(folder) / MANIFEST).is_file()


def read_manifest(folder: str | Path) -> list[dict]:
    """Every clip's row; a folder without a manifest is refused, naming the command that makes one."""
    path = Path(folder) / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(f"{folder}: no {MANIFEST} (run `s2tf data prepare` first)")
    rows = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{number}: not a JSON line ({exc.msg})") from None
    return rows


def write_manifest(folder: str | Path, rows: Iterable[dict]) -> Path:
    path = Path(folder) / MANIFEST
    with open(path, "w") as fh:
        fh.writelines(json.dumps(r) + "\n" for r in rows)
    return path
