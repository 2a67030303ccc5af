"""`s2tf data voices DIR... OUT --ge2e FILE`: real voices as GE2E d-vectors, for training E_id^a's head.

E_id^a is a frozen GE2E speaker encoder under a small trained head, so the expensive part of every
training step would give the same answer each epoch. It runs once here, on exactly the windows inference
uses (loudness-normalised log-mel, 3.2 s identity windows, GE2E partials over each), on each clip as
recorded and on `augmented` noisy, reverberant, band-limited copies. Training then reads `dvectors.npy`
(one unit d-vector per window) and `windows.csv` (its clip, person, labels, split and the clip's photo,
where the voice has one: s2f clips are a photo and speech from the same video).

Understood folders: s2f (`people.csv`, `voxceleb/` and `avspeech/` person folders of `<clip>.opus` +
`<clip>.jpg`), RAVDESS (`Actor_NN/` recordings + `face.png`, `attributes.csv`), LibriSpeech
(`speakers.csv`: file, speaker, gender; one voice per speaker, no photo).
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .faceset import is_s2f, s2f_genders, s2f_people
from .holdout import split_of
from .sources import AUDIO_SUFFIXES, real_voice_identities

COLUMNS = ["window", "clip", "variant", "person", "source", "gender", "split", "photo"]


@dataclass
class VoiceClip:
    path: Path
    person: str  # "<source>-<name>", the same as in a face set
    source: str
    gender: str = "unknown"
    photo: str = ""  # the person's photo of the same recording, where there is one

    @property
    def split(self) -> str:
        return split_of(self.source, self.person.split("-", 1)[1])


def clips_in(folder: str | Path) -> list[VoiceClip]:
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such voice folder")
    if is_s2f(folder):
        genders = s2f_genders(folder)
        out = []
        for name, person in s2f_people(folder):
            for voice in sorted(p for p in person.iterdir() if p.suffix.lower() in AUDIO_SUFFIXES):
                photo = voice.with_suffix(".jpg")
                out.append(VoiceClip(voice, f"s2f-{name}", "s2f", genders.get(name, "unknown"),
                                     str(photo) if photo.is_file() else ""))  # fmt: skip
        return out
    if (folder / "speakers.csv").is_file():
        with open(folder / "speakers.csv", newline="") as fh:
            rows = list(csv.DictReader(fh))
        gender = {"m": "male", "f": "female"}
        return [VoiceClip(folder / r["file"], f"librispeech-{r['speaker']}", "librispeech",
                          gender.get(r.get("gender", ""), "unknown")) for r in rows]  # fmt: skip
    if (folder / "attributes.csv").is_file():
        return [VoiceClip(v, f"ravdess-{p.name.split('-', 1)[1]}", "ravdess", p.gender, str(p.photos[0]))
                for p in real_voice_identities(folder) for v in p.voices]  # fmt: skip
    raise FileNotFoundError(f"{folder}: not a voice folder s2tf knows (s2f, RAVDESS or LibriSpeech layout)")


def window_dvectors(model, wave: np.ndarray) -> np.ndarray:
    """(windows, hidden) unit GE2E d-vectors of a clip's identity windows, as `S2TF.identity_from_mel`
    feeds them to E_id^a's head."""
    import torch
    import torch.nn.functional as F

    from .. import audio as audio_io
    from ..pipeline import identity_windows

    enc = model.audio_identity
    with torch.inference_mode():
        mel = model.mel(torch.from_numpy(audio_io.normalize_loudness(wave)))[0]
        windows = identity_windows(mel, model.cfg.audio)
        b = len(windows)
        d = enc.backbone(enc.ge2e_input(windows.float())).view(b, -1, enc.cfg.ge2e_hidden).mean(1)
        return F.normalize(d, dim=-1).numpy()


BACKBONE = "ge2e.safetensors"  # the GE2E weights the d-vectors came from, kept beside them


def build_voiceset(folders: list[Path], out: Path, model, augmented: int = 2, seed: int = 0, progress=None) -> dict:
    """d-vectors of every clip's windows (as recorded, then `augmented` copies) into OUT, with the GE2E
    weights that made them (`ge2e.safetensors`): the voice stage loads those, so the head it trains
    always sits on the backbone its inputs came from."""
    from safetensors.torch import save_file

    from .. import audio as audio_io
    from .. import augment

    clips = [c for folder in folders for c in clips_in(folder)]
    if not clips:
        raise FileNotFoundError(f"{', '.join(map(str, folders))}: no voices found")
    out.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.audio_identity.backbone.state_dict().items()}, str(out / BACKBONE))
    rng = np.random.default_rng(seed)
    sr = model.cfg.audio.sample_rate
    vectors, rows, skipped = [], [], []
    for i, clip in enumerate(clips):
        try:
            wave = audio_io.load_audio(clip.path, sr)
        except Exception as exc:  # one unreadable file is one fewer voice
            skipped.append((str(clip.path), f"{type(exc).__name__}: {exc}"))
            continue
        if len(wave) < model.cfg.audio.min_duration_s * sr:
            skipped.append((str(clip.path), "too short"))
            continue
        for variant in range(augmented + 1):
            x = wave if variant == 0 else augment.audio(wave, sr, rng)
            for d in window_dvectors(model, x.astype(np.float32)):
                rows.append([len(rows), i, variant, clip.person, clip.source, clip.gender, clip.split, clip.photo])
                vectors.append(d)
        if progress:
            progress(1)
    np.save(out / "dvectors.npy", np.stack(vectors).astype(np.float32))
    with open(out / "windows.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(COLUMNS)
        writer.writerows(rows)
    with open(out / "skipped.csv", "w", newline="") as fh:
        csv.writer(fh).writerows([["clip", "reason"], *skipped])
    summary = {"kind": "voices", "clips": len(clips) - len(skipped), "windows": len(rows), "skipped": len(skipped),
               "people": len({r[3] for r in rows}), "val_people": len({r[3] for r in rows if r[6] == "val"}),
               "augmented": augmented}  # fmt: skip
    (out / "voiceset.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary
