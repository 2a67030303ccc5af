"""`s2tf data synth`: a talking-face corpus in VoxCeleb2's raw layout, from face photos and voices.

ROOT/<identity>/<video>/<clip>.mp4 (224 px, 25 fps, H.264, AAC 16 kHz mono) plus ROOT/meta.csv.
Each face-folder identity gets a synthetic espeak-ng voice (settings partly from its labels), each
clip a random sentence with the mouth driven by the phoneme timings; real-voice identities
(`--real-voices`, the RAVDESS layout) keep their own recordings, the mouth following loudness.
Deterministic by seed: identity i's randomness depends only on (seed, i).
"""

from __future__ import annotations

import csv
import json
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .espeak import require_espeak
from .sources import Identity, face_identities, real_voice_identities

log = logging.getLogger(__name__)

FPS = 25.0
SAMPLE_RATE = 16000
FRAME_SIZE = 224
LEAD_SILENCE = 0.25  # seconds of silence around each synthetic sentence (mouth closed)
DONE = ".done"
# Inner-lip gap over mouth width (`judges.landmarks.mouth_opening`) of the photo at rest. Silence keeps the photo's
# own mouth, so a smiling or talking photo would teach "open mouth = silence": photos with closed lips
# are used first, then slightly parted ones; more open photos are not used.
CLOSED_MOUTH = 0.06
PARTED_MOUTH = 0.15


@dataclass
class SynthOptions:
    out: Path
    identities: int = 200
    clips_per_identity: int = 4
    real_clips_per_identity: int = 20  # real voices have many recordings: use more of them
    seed: int = 0
    workers: int = 2
    size: int = FRAME_SIZE
    face_voice: float = 0.0  # share of pitch/tract/tilt/rate spread set by the face itself (`voices.face_scores`)


def choose_identities(face_dirs: list[Path], real_dirs: list[Path], count: int | None, seed: int) -> list[Identity]:
    """All real-voice people, then face identities drawn evenly across the face folders; the first
    `count` of them (all with None). The order does not depend on `count`."""
    rng = np.random.default_rng(seed)
    chosen = [ident for d in real_dirs for ident in real_voice_identities(d)]
    pools = [face_identities(d) for d in face_dirs]
    pools = [[p[i] for i in rng.permutation(len(p))] for p in pools if p]
    want = max(0, count - len(chosen)) if count is not None else sum(map(len, pools))
    i = 0
    while want and any(pools):
        pool = pools[i % len(pools)]
        if pool:
            chosen.append(pool.pop())
            want -= 1
        i += 1
    return chosen[:count] if count is not None else chosen


def _load_rgb(path: Path) -> np.ndarray:
    from ..images import load_image

    return load_image(path)


Usable = tuple[Path, np.ndarray, np.ndarray]  # photo, its pixels, its 68 landmarks


def rest_photos(photos: list[Path], needed: int, most_open: float = PARTED_MOUTH) -> list[Usable]:
    """Up to `needed` (photo, image, landmarks) whose mouth is closed at rest, in the given order,
    topped up with the least open of those open at most `most_open`."""
    from ..judges.landmarks import landmarks68, mouth_opening

    closed, parted = [], []
    for photo in photos:
        image = _load_rgb(photo)
        marks = landmarks68(image)
        if marks is None:
            log.warning("%s: no face landmarks, photo skipped", photo)
            continue
        opening = mouth_opening(marks)
        if opening <= CLOSED_MOUTH:
            closed.append((photo, image, marks))
            if len(closed) == needed:
                break
        elif opening <= most_open:
            parted.append((opening, (photo, image, marks)))
        else:
            log.info("%s: mouth open (%.2f), photo skipped", photo, opening)
    parted.sort(key=lambda t: t[0])  # stable: equally open photos keep their order
    return (closed + [usable for _, usable in parted])[:needed]


def apparent_gender(image: np.ndarray) -> str | None:
    """The face's apparent gender by the independent classifier (`s2tf[eval]`), for people without a
    gender label, so that their synthetic voice still matches their face; None when not installed."""
    from ..judges.attributes import AttributeClassifier

    try:
        classifier = AttributeClassifier()
    except RuntimeError:  # not installed
        log.warning("no gender label and no age/gender classifier (pip install 's2tf[eval]'): a random voice gender")
        return None
    return classifier(image).gender


def face_voice_scores(images: list[np.ndarray]) -> np.ndarray:
    """The face scores (`voices.face_scores`) of one person's photos, by dlib's embedder (`s2tf[data]`)."""
    from ..judges.embedder import FaceEmbedder
    from .voices import face_scores

    return face_scores(FaceEmbedder().embed_many(images))


def _write_clip(path: Path, frames: list[np.ndarray], wave: np.ndarray, size: int) -> None:
    import soundfile as sf

    from ..outputs import atomic_path
    from ..video import write_mp4

    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="s2tf-synth-") as tmp, atomic_path(path) as part:
        wav = Path(tmp) / "a.wav"
        sf.write(str(wav), wave, SAMPLE_RATE, subtype="PCM_16")
        write_mp4(part, frames, size, FPS, wav, {"comment": "s2tf synthetic corpus clip"})


def synth_identity(index: int, ident: Identity, opts: SynthOptions) -> dict:
    """Write one identity's clips; returns its meta row (or a row with `skipped`)."""
    from .animate import FaceAnimator, HeadDrift, openness_from_envelope, openness_from_phonemes
    from .sentences import sentence
    from .voices import speak, voice_profile

    rng = np.random.default_rng([opts.seed, index])
    folder = opts.out / ident.name
    row = {"identity": ident.name, "gender": ident.gender, "age": ident.age if ident.age is not None else "",
           "ethnicity": ident.ethnicity, "source": ident.source, "voice": "real" if ident.voices else "synthetic"}  # fmt: skip
    if (folder / DONE).is_file():
        return row
    photos = [p for p in (ident.photos[i] for i in rng.permutation(len(ident.photos)))]
    real = [ident.voices[i] for i in rng.permutation(len(ident.voices))] if ident.voices else []
    n_clips = opts.real_clips_per_identity if ident.voices else opts.clips_per_identity
    # a real voice is worth keeping even when its only photo shows an open mouth
    usable = rest_photos(photos, n_clips, PARTED_MOUTH if not ident.voices else float("inf"))
    if not usable:
        return {**row, "skipped": "no photo with face landmarks and a closed mouth"}
    profile, voice_meta = None, {"real": True}
    if not ident.voices:
        labelled = ident.gender in ("male", "female")
        apparent = None if labelled else apparent_gender(usable[0][1])
        face_z = face_voice_scores([image for _, image, _ in usable]) if opts.face_voice else None
        profile = voice_profile(ident, rng, apparent, face_z=face_z, face_share=opts.face_voice)
        source = "label" if labelled else "photo" if apparent else "random"
        voice_meta = {**profile.to_dict(), "gender_from": source}
        if face_z is not None:
            voice_meta.update(face_share=opts.face_voice, face_z=[round(float(z), 4) for z in face_z])
    for clip in range(n_clips):
        photo, image, marks = usable[clip % len(usable)]
        if profile is not None:
            speech, phonemes = speak(sentence(rng), profile, SAMPLE_RATE, seed=int(rng.integers(2**31)))
            pad = np.zeros(int(LEAD_SILENCE * SAMPLE_RATE), np.float32)
            wave = np.concatenate([pad, speech, pad])
            duration = len(wave) / SAMPLE_RATE
            openness = openness_from_phonemes(phonemes, duration, FPS, offset=LEAD_SILENCE)
        else:
            from ..audio import load_audio

            wave = load_audio(real[clip % len(real)], SAMPLE_RATE)
            openness = openness_from_envelope(wave, SAMPLE_RATE, FPS)
        animator = FaceAnimator(image, marks, opts.size, HeadDrift.random(rng))
        frames = [animator.frame(float(o), i / FPS) for i, o in enumerate(openness)]
        video = f"v{photos.index(photo):03d}"
        _write_clip(folder / video / f"{clip:05d}.mp4", frames, wave, opts.size)
    (folder / "voice.json").write_text(json.dumps(voice_meta) + "\n")
    (folder / DONE).write_text("")
    return row


def _run_one(args: tuple[int, Identity, SynthOptions]) -> dict:
    return synth_identity(*args)


def synth_corpus(face_dirs: list[Path], real_dirs: list[Path], opts: SynthOptions, progress=None) -> dict[str, int]:
    """Write the corpus; returns counts. Identities already finished are kept (resumable); one
    without a usable photo is skipped, counted, and the next candidate takes its place."""
    candidates = choose_identities(face_dirs, real_dirs, None, opts.seed)
    if not candidates:
        raise ValueError("no identities found in the given folders")
    if any(not c.voices for c in candidates):
        require_espeak()  # not 20 minutes in, from a worker
    opts.out.mkdir(parents=True, exist_ok=True)
    rows, kept, start = [], 0, 0
    import multiprocessing as mp

    # espeak-ng keeps synthesis state between calls within a process, so every identity is made in a
    # fresh forked child: its output depends only on (seed, candidate index), not on scheduling.
    with mp.get_context("fork").Pool(max(1, opts.workers), maxtasksperchild=1) as pool:
        while kept < opts.identities and start < len(candidates):
            stop = start + opts.identities - kept  # never more than still wanted: the result is the same
            jobs = [(i, candidates[i], opts) for i in range(start, min(stop, len(candidates)))]
            for row in pool.imap(_run_one, jobs):
                rows.append(row)
                if "skipped" not in row:
                    kept += 1
                    if progress:
                        progress(1)
            start = stop
    made = [r for r in rows if "skipped" not in r]
    with open(opts.out / "meta.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["identity", "gender", "age", "ethnicity", "source", "voice"])
        writer.writeheader()
        writer.writerows(made)
    return {"identities": len(made), "skipped": len(rows) - len(made),
            "clips": sum(1 for _ in opts.out.glob("*/*/*.mp4"))}  # fmt: skip
