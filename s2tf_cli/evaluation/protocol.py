"""The evaluation protocol: held-out identities of a prepared corpus (and optionally real people),
scored by independent judges. One call per weights folder gives one row of the table."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
import torch.nn.functional as F

from .. import images
from ..corpus_format import read_manifest
from ..judges.attributes import AttributeClassifier, age_group
from ..judges.landmarks import mouth_opening
from ..pipeline import S2TF
from . import metrics as M

Progress = Callable[[int], None]


@dataclass
class EvalResult:
    """One model's evaluation: the figures (names in `catalog`), and what the paired differences between
    models need: who was scored, and each per-person metric as (values, weights) in that order."""

    figures: dict[str, Any]
    people: list[str]
    per_person: dict[str, tuple[list[float], list[float] | None]]


@runtime_checkable
class Scored(Protocol):
    """What `s2tf eval` asks of a model: `S2TF` and the Voice2Face baseline both answer it."""

    can_embed_faces: bool  # False: faces from voices only (no face encoder: no retrieval, matching or talk)
    weights_label: str
    precision: str

    def voice_identity(self, voice) -> torch.Tensor: ...

    def face(self, voice, pose=None, seed: int | None = None, n_samples: int = 1, **kw) -> list[np.ndarray]: ...

    def face_from_identity(
        self, e, pose=None, seed: int | None = None, n_samples: int = 1, **kw
    ) -> list[np.ndarray]: ...


@dataclass
class Person:
    """One evaluated identity: a voice, a real face, labels, and a talking clip (frames + audio)."""

    name: str
    voice: np.ndarray  # 16 kHz mono
    face: np.ndarray  # (H, W, 3) real face, the model's crop
    frames: np.ndarray | None = None  # (T, H, W, 3) real talking frames, for lip sync
    gender: str = "unknown"
    age: str = ""
    ethnicity: str = "unknown"


@dataclass
class EvalOptions:
    max_people: int = 200
    sync_clips: int = 20  # clips scored for lip sync (LMD)
    seed: int = 0
    figures: Path | None = None
    extra: dict = field(default_factory=dict)


@dataclass
class Labels:
    """A corpus person's labels alone, for what needs no audio or frames (the label oracles)."""

    name: str
    gender: str = "unknown"
    age: str = ""
    ethnicity: str = "unknown"
    path: Path | None = None  # its first clip's shard


def corpus_labels(folder: Path, split: str = "test", max_people: int = 200) -> list[Labels]:
    """The people `corpus_people` scores, in its order, from the manifest alone."""
    folder = Path(folder)
    first: dict[str, dict] = {}
    for r in read_manifest(folder):
        if r["split"] == split and r["identity"] not in first:
            first[r["identity"]] = r
    people = [Labels(name, r.get("gender", "unknown"), str(r.get("age", "")), r.get("ethnicity", "unknown"),
                     folder / r["path"]) for name, r in sorted(first.items())[:max_people]]  # fmt: skip
    if not people:
        raise ValueError(f"{folder}: no {split} identities")
    return people


def corpus_people(folder: Path, split: str = "test", max_people: int = 200) -> list[Person]:
    """The first clip of each identity in `split` (test identities are never trained on)."""
    from ..training.corpus import Shard

    people = []
    for labels in corpus_labels(folder, split, max_people):
        shard = Shard(labels.path)
        frames = np.stack([shard.frame(i) for i in range(len(shard))])
        people.append(Person(labels.name, shard.audio, frames[0], frames, labels.gender, labels.age, labels.ethnicity))
    return people


def real_people(folder: Path, size: int) -> list[Person]:
    """RAVDESS layout: <person>/face.png + recordings; gender from `attributes.csv` (Male) when present."""
    import csv

    from ..audio import load_audio
    from ..faces import find_face
    from ..images import load_image

    folder = Path(folder)
    males: dict[str, str] = {}
    if (folder / "attributes.csv").is_file():
        with open(folder / "attributes.csv", newline="") as fh:
            for row in csv.DictReader(fh):
                key = row.get("image_id") or row.get("person") or ""
                males[key] = "male" if row.get("Male") in ("1", "True", "true") else "female"
    people = []
    for person in sorted(p for p in folder.iterdir() if (p / "face.png").is_file()):
        recordings = sorted(q for q in person.iterdir() if q.suffix.lower() in (".wav", ".flac", ".mp3", ".ogg"))
        if not recordings:
            continue
        crop, _ = find_face(load_image(person / "face.png"), size)
        if crop is None:
            continue
        people.append(Person(person.name, load_audio(recordings[0]), crop, gender=males.get(person.name, "unknown")))
    if not people:
        raise ValueError(f"{folder}: no <person>/face.png with recordings")
    return people


# 1:2 matching's negatives: anyone, or people matched on gender / ethnicity / age group / all three
MATCHED_ON = {"rand": (), "G": ("gender",), "N": ("ethnicity",), "A": ("age",), "GNA": ("gender", "ethnicity", "age")}


def _label(person: Person, key: str) -> str | None:
    """The label negatives are matched on; ages by group (`age_group`), as the paper matches them."""
    value = getattr(person, key)
    if value in ("", None, "unknown"):
        return None
    return age_group(float(value)) if key == "age" else value


def _matched(people: list[Person] | list[Labels], keys: tuple[str, ...]) -> np.ndarray:
    """(n, n) bool: j may be i's negative, i.e. both carry every label in `keys` (gender, age group,
    ethnicity) and the labels agree; with no keys, everyone."""
    labels = [tuple(_label(p, k) for k in keys) for p in people]
    index = {label: k for k, label in enumerate(dict.fromkeys(labels))}
    codes = np.array([index[label] for label in labels], dtype=int)
    known = np.array([None not in label for label in labels], dtype=bool)
    return (codes[:, None] == codes[None, :]) & known[:, None] & known[None, :]


# What the label oracles know of each voice: its speaker's gender; gender and age group
ORACLES = {"gender": ("gender",), "gender, age group": ("gender", "age")}


def label_oracle_scores(people: list[Person] | list[Labels], keys: tuple[str, ...] = ("gender", "age")) -> np.ndarray:
    """(n, n) scores of a ranker that knows each voice's labels `keys` and nothing else about the face:
    agreement on the first key first, then the next (an unknown label agrees with nothing). A voice that
    carries only those labels cannot rank faces better than this, in expectation."""
    scores = np.zeros((len(people), len(people)))
    for rank, key in enumerate(keys):
        scores += 2.0 ** (len(keys) - 1 - rank) * _matched(people, (key,))
    return scores


def label_oracle_metrics(people: list[Person] | list[Labels], keys: tuple[str, ...] = ("gender", "age")) -> dict:
    """Retrieval and 1:2 matching of a label oracle (`label_oracle_scores`), ties broken at random:
    the ceiling for voices whose only tie to the face is those labels."""
    scores = label_oracle_scores(people, keys)
    truth = list(range(len(people)))
    out: dict = {"people": len(people)}
    for prefix in ("", "voice "):  # both queries, the generated face and the voice, meet the same ceiling
        out.update({f"{prefix}R@{k}": v for k, v in M.expected_recall_at(scores, truth).items()})
    for name, matched in MATCHED_ON.items():
        out[f"AUC {name}"], out[f"AUC {name} trials"] = M.matching_auc(scores, _matched(people, matched))
    return out


def identity_metrics(s2tf: Scored, people: list[Person], progress: Progress | None = None) -> dict:
    """Voice -> face identity (independent embedder), retrieval, matching AUC, attributes, quality, speed."""
    from ..judges.embedder import FaceEmbedder

    embedder, judge = FaceEmbedder(), AttributeClassifier()
    t0 = time.perf_counter()
    generated, f_a = [], []
    shared = s2tf.can_embed_faces
    for p in people:
        f_a.append(s2tf.voice_identity(p.voice))
        generated.append(s2tf.face_from_identity(f_a[-1])[0])
        if progress:
            progress(1)
    faces_per_s = len(people) / (time.perf_counter() - t0)
    real = [p.face for p in people]
    e_gen, e_real = embedder.embed_many(generated), embedder.embed_many(real)
    out: dict = {"people": len(people), "faces_per_s": faces_per_s}
    cosines = M.cosine(e_gen, e_real)
    out["cosine"] = float(cosines.mean())
    out["l1"] = float(M.l1(e_gen, e_real).mean())
    truth = list(range(len(people)))
    scores = M.similarity_matrix(e_gen, e_real)
    out.update({f"R@{k}": v for k, v in M.recall_at(scores, truth).items()})
    rank = M.ranks(scores, truth)
    out["R@5 ±"] = M.bootstrap_se(100.0 * (rank <= 5))
    out["_people"] = [p.name for p in people]
    out["_per_person"] = {
        "cosine": (cosines, None),
        "R@5": (100.0 * (rank <= 5), None),
        "R@10": (100.0 * (rank <= 10), None),
    }
    out["KID"] = M.kid(e_real, e_gen)
    out["judge misses"] = embedder.misses
    out["_generated"] = generated
    _attribute_metrics(out, [judge(g) for g in generated], people)
    out.update(judge_on_real_faces(judge, people))
    if shared:
        shared_row = _shared_space_metrics(s2tf, people, torch.stack(f_a))
        out["_per_person"].update(shared_row.pop("_per_person"))
        out.update(shared_row)
        out.update(reconstruction_metrics(s2tf, people, embedder, e_real))
    return out


def reconstruction_metrics(s2tf: S2TF, people: list[Person], embedder, e_real: np.ndarray) -> dict:
    """Stage 1's autoencoder, G(cat(f_id^v, f_ir^v)) of each real face, on people it never trained on:
    where G smears an unseen face it smears an unseen voice's too, whatever the audio side does."""
    recon = [s2tf.reconstruct(p.face, aligned=True) for p in people]
    l1 = np.array([np.abs(r.astype(np.float32) - images.resize(p.face, r.shape[0]).astype(np.float32)).mean()
                   for r, p in zip(recon, people)])  # fmt: skip
    cos = M.cosine(embedder.embed_many(recon), e_real)
    return {"unseen recon cosine": float(cos.mean()), "unseen recon L1": float(l1.mean())}


def _shared_space_metrics(s2tf: S2TF, people: list[Person], f_a: torch.Tensor) -> dict:
    """Retrieval and 1:2 matching with the voice straight through the shared identity space (what
    `s2tf retrieve` does); only for models with a face encoder."""
    real = [p.face for p in people]
    truth = list(range(len(people)))
    out: dict = {}
    f_v = torch.stack([s2tf.face_identity(f, aligned=True) for f in real])
    voice_scores = (f_a @ f_v.T).cpu().numpy()
    out.update({f"voice R@{k}": v for k, v in M.recall_at(voice_scores, truth).items()})
    rank = M.ranks(voice_scores, truth)
    out["voice R@5 ±"] = M.bootstrap_se(100.0 * (rank <= 5))
    per_person = {"voice R@5": (100.0 * (rank <= 5), None), "voice R@10": (100.0 * (rank <= 10), None)}
    # 1:2 matching: every other person as the negative, or every one matched on the labels
    for name, keys in MATCHED_ON.items():
        allowed = _matched(people, keys)
        out[f"AUC {name}"], out[f"AUC {name} trials"] = M.matching_auc(voice_scores, allowed)
        per_person[f"AUC {name}"] = M.matching_trials(voice_scores, allowed)
        out[f"AUC {name} ±"] = M.bootstrap_se(*per_person[f"AUC {name}"])
    out["_per_person"] = per_person
    return out


def _attribute_metrics(out: dict, attrs: list, people: list[Person]) -> None:
    """Apparent gender and age group of the generated faces against the speakers' labels (NaN: no label)."""
    nan = float("nan")
    gender = np.array([100.0 * (a.gender == p.gender) if p.gender in ("male", "female") else nan
                       for a, p in zip(attrs, people)])  # fmt: skip
    age = np.array([100.0 * (age_group(a.age) == age_group(float(p.age))) if p.age not in ("", None) else nan
                    for a, p in zip(attrs, people)])  # fmt: skip
    for name, right, count in (("gender %", gender, "gender n"), ("age group %", age, "age n")):
        labelled = right[~np.isnan(right)]
        out[name] = float(labelled.mean()) if len(labelled) else nan
        out[f"{name} ±"] = M.bootstrap_se(right)
        out[count] = len(labelled)
        out["_per_person"][name] = (right, None)


JUDGE_BLUR_SIGMA = 3.0  # px at 128 px: about as soft as the CPU preset's faces


def judge_on_real_faces(judge: Callable, people: list[Person], sigma: float = JUDGE_BLUR_SIGMA) -> dict:
    """The gender judge on the people's own photos, sharp and blurred: the ceiling of `gender %`, and
    how far softness alone moves it (the judge calls blurred men women)."""
    import cv2

    labelled = [p for p in people if p.gender in ("male", "female")]
    out: dict = {}
    for key, s in (("judge gender % real faces", 0.0), ("judge gender % blurred real faces", sigma)):
        right = []
        for p in labelled:
            face = p.face if s == 0 else cv2.GaussianBlur(p.face, (0, 0), s * p.face.shape[1] / 128)
            right.append(100.0 * (judge(np.ascontiguousarray(face)).gender == p.gender))
        out[key] = float(np.mean(right)) if right else float("nan")
    return out


def talking_people(people: list[Person], clips: int) -> list[Person]:
    """The people whose clips are scored for lip sync: the first `clips` with enough frames."""
    return [p for p in people if p.frames is not None and len(p.frames) > 10][:clips]


def lip_sync_metrics(s2tf: S2TF, people: list[Person], clips: int, seed: int = 0, syncnet=None,
                     progress: Progress | None = None) -> dict:  # fmt: skip
    """LMD: mouth landmarks of frames generated with the real first frame's identity and pose plus the
    clip's audio, against the real frames; and the same with another clip's audio (control)."""
    from ..judges.landmarks import landmarks68

    talking = talking_people(people, clips)
    if not talking:
        return {}
    rng = np.random.default_rng(seed)
    lmd, control, opened, opened_real, t_frames, t_time = [], [], [], [], 0, 0.0
    sync: dict[str, list] = {"offset": [], "conf": [], "conf shuffled": [], "conf real": [], "offset real": []}
    for k, p in enumerate(talking):
        other = (
            talking[(k + 1 + int(rng.integers(0, max(1, len(talking) - 1)))) % len(talking)]
            if len(talking) > 1
            else None
        )
        t0 = time.perf_counter()
        gen = reconstruct_talk(s2tf, p.frames[0], p.voice, len(p.frames))
        t_time += time.perf_counter() - t0
        t_frames += len(gen)
        gen_pts, real_pts = frame_landmarks(gen, landmarks68), frame_landmarks(p.frames, landmarks68)
        d = _mouth_distance(gen_pts, real_pts)
        if d is not None:
            lmd.append(d)
        if other is not None and other is not p:
            shuffled = reconstruct_talk(s2tf, p.frames[0], other.voice, len(p.frames))
            d = _mouth_distance(frame_landmarks(shuffled, landmarks68), real_pts)
            if d is not None:
                control.append(d)
        loud = M.frame_loudness(p.voice, len(gen))  # gen has the real clip's frame count
        opened.append(M.correlation(mouth_openings(gen_pts), loud))
        opened_real.append(M.correlation(mouth_openings(real_pts), loud))
        if syncnet is not None:
            from .syncnet import offsets_and_confidence

            off, conf, _ = offsets_and_confidence(syncnet, gen, p.voice)
            sync["offset"].append(off)
            sync["conf"].append(conf)
            real_off, real_conf, _ = offsets_and_confidence(syncnet, p.frames, p.voice)  # the expert's own check
            sync["offset real"].append(real_off)
            sync["conf real"].append(real_conf)
            if other is not None and other is not p:
                sync["conf shuffled"].append(offsets_and_confidence(syncnet, gen, other.voice)[1])
        if progress:  # a clip is the slow unit of the evaluation
            progress(1)
    extra = {}
    if syncnet is not None and sync["offset"]:
        offs = np.array(sync["offset"])
        extra = {"sync offset 0 %": float(100 * np.mean(offs == 0)), "sync offset ±1 %": float(100 * np.mean(np.abs(offs) <= 1)),
                 "sync offset 0 % real frames": float(100 * np.mean(np.array(sync["offset real"]) == 0)),
                 "sync conf": float(np.mean(sync["conf"])), "sync conf real frames": float(np.mean(sync["conf real"])),
                 "sync conf shuffled audio": float(np.mean(sync["conf shuffled"])) if sync["conf shuffled"] else float("nan"),
                 "sync offsets": offs.tolist()}  # fmt: skip
    return extra | {"LMD": float(np.mean(lmd)) if lmd else float("nan"), "LMD clips": len(lmd),
            "LMD shuffled audio": float(np.mean(control)) if control else float("nan"),
            "mouth-loudness corr": _nanmean(opened), "mouth-loudness corr real frames": _nanmean(opened_real),
            "frames_per_s": t_frames / max(t_time, 1e-9)}  # fmt: skip


def _nanmean(values: list[float]) -> float:
    finite = [v for v in values if np.isfinite(v)]
    return float(np.mean(finite)) if finite else float("nan")


def mouth_probe(s2tf: S2TF, people: list[Person], clips: int = 24) -> dict:
    """How much of the mouth's motion the visual identity-irrelevant feature carries: a ridge regression
    from Δf_ir (frame k minus frame 0) to the mouth box's mean pixel change, fitted on half the clips and
    scored (R²) on the other half. Near 0 means the content loss of Eq. 3 has nothing to align audio with."""
    from ..images import to_tensor

    talking = [p for p in people if p.frames is not None and len(p.frames) > 10][:clips]
    if len(talking) < 4:
        return {}
    xs, ys = [], []
    for p in talking:
        frames = p.frames[:100]
        with torch.inference_mode():
            f_ir = s2tf.model.visual_irrelevant(torch.stack([to_tensor(f) for f in frames]).to(s2tf.device))
        xs.append((f_ir - f_ir[:1]).cpu().numpy())
        n = frames.shape[1]
        mouth = frames[:, int(n * 0.62) : int(n * 0.85), int(n * 0.3) : int(n * 0.7)].astype(np.float64)
        ys.append(np.abs(mouth - mouth[:1]).mean(axis=(1, 2, 3)))
    half = len(talking) // 2
    r2 = M.heldout_r2(np.concatenate(xs[:half]), np.concatenate(ys[:half]), np.concatenate(xs[half:]),
                      np.concatenate(ys[half:]))  # fmt: skip
    return {"f_ir mouth R2": r2, "f_ir probe clips": len(talking)}


def reconstruct_talk(s2tf: S2TF, first: np.ndarray, voice: np.ndarray, n: int) -> np.ndarray:
    """`n` frames of a real clip re-drawn by `talk`: identity and pose of its first frame, mouth from its audio."""
    _, frames = s2tf.talk_frames(voice, pose=first, aligned_pose=True, face=first, aligned_face=True)
    out = list(frames)[:n]
    return np.stack(out + out[-1:] * (n - len(out)))


def frame_landmarks(frames: np.ndarray, landmarks68) -> list[np.ndarray | None]:
    """dlib's 68 points of each frame in the frame's own pixels (found on a 256-px upscale), None where
    no face is found."""
    out = []
    for f in frames:
        up = _up(f)
        pts = landmarks68(up)
        out.append(None if pts is None else pts * (f.shape[1] / up.shape[1]))
    return out


def _mouth_distance(gen: list[np.ndarray | None], real: list[np.ndarray | None]) -> float | None:
    """LMD over the frames where both have landmarks (`frame_landmarks` of each clip)."""
    ds = [M.landmark_distance(g[48:68], r[48:68]) for g, r in zip(gen, real) if g is not None and r is not None]
    return float(np.mean(ds)) if ds else None


def mouth_openings(points: list[np.ndarray | None]) -> np.ndarray:
    """Per frame inner-lip gap / mouth width (`judges.landmarks.mouth_opening`), NaN where no face was found."""
    return np.array([mouth_opening(p) if p is not None else np.nan for p in points])


def _up(image: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.resize(image, (256, 256), interpolation=cv2.INTER_CUBIC) if image.shape[0] < 256 else image


def real_people_metrics(s2tf: S2TF, people: list[Person], held_out: set[str] = frozenset()) -> dict:
    """Each person's own face rank among all the faces, from the voice alone, and gender consistency."""
    judge = AttributeClassifier()
    fronts = [s2tf.face(p.voice)[0] for p in people]
    labelled = [(judge(f).gender, p.gender) for f, p in zip(fronts, people) if p.gender in ("male", "female")]
    gender = {
        "real people": len(people),
        "real gender %": float(100 * np.mean([a == b for a, b in labelled])) if labelled else float("nan"),
    }
    if not s2tf.can_embed_faces:
        return gender
    gender.update(real_talk_mouth(s2tf, people, fronts))
    f_a = torch.stack([s2tf.voice_identity(p.voice) for p in people])
    f_v = torch.stack([s2tf.face_identity(p.face, aligned=True) for p in people])
    scores = F.normalize(f_a, dim=-1) @ F.normalize(f_v, dim=-1).T
    r = M.ranks(scores.cpu().numpy(), list(range(len(people))))
    return gender | {"real mean rank": float(r.mean()), "real chance rank": (len(people) + 1) / 2,
            "real R@1": float(100 * np.mean(r <= 1)), "real R@5": float(100 * np.mean(r <= 5)),
            "real held-out mean rank": float(np.mean([k for p, k in zip(people, r) if p.name in held_out]))
            if any(p.name in held_out for p in people) else float("nan"),
            "real ranks": {p.name + (" (held out)" if p.name in held_out else ""): int(k) for p, k in zip(people, r)}}  # fmt: skip


def quiet_loud_openings(openings: np.ndarray, loudness: np.ndarray) -> tuple[float, float]:
    """Mean mouth opening over the quietest 15 % and the loudest 40 % of frames (NaN frames skipped):
    a mouth that closes in pauses and opens with speech has the first well below the second."""
    quiet, loud = loudness <= np.quantile(loudness, 0.15), loudness >= np.quantile(loudness, 0.6)
    return _nanmean(list(openings[quiet])), _nanmean(list(openings[loud]))


def real_talk_mouth(s2tf: S2TF, people: list[Person], fronts: list[np.ndarray]) -> dict:
    """`talk` on each real recording, posed by the person's own photo: the inner-lip gap (of the mouth
    width) in quiet and loud frames, its correlation with loudness, and the gap of the frontal face
    (`fronts`: each person's face from the voice, already drawn for the gender check)."""
    from ..judges.landmarks import landmarks68

    quiet, loud, corr, rest = [], [], [], []
    for p, front in zip(people, fronts):
        n, frames = s2tf.talk_frames(p.voice, pose=p.face, aligned_pose=True)
        openings = mouth_openings(frame_landmarks(np.stack(list(frames)), landmarks68))
        loudness = M.frame_loudness(p.voice, n)
        q, lo = quiet_loud_openings(openings, loudness)
        quiet.append(q)
        loud.append(lo)
        corr.append(M.correlation(openings, loudness))
        rest.append(float(mouth_openings(frame_landmarks(front[None], landmarks68))[0]))
    return {"real talk gap quiet": _nanmean(quiet), "real talk gap loud": _nanmean(loud),
            "real talk mouth-loudness corr": _nanmean(corr), "real frontal gap": _nanmean(rest)}  # fmt: skip


def evaluate(s2tf: S2TF, data: Path, split: str = "test", real_voices: Path | None = None, max_people: int = 200,
             sync_clips: int = 20, seed: int = 0, figures: Path | None = None, syncnet: Path | None = None,
             progress: Progress | None = None, total: Progress | None = None,
             face_scores: Path | None = None) -> EvalResult:  # fmt: skip
    """Every metric for one model; figures (when asked) go to `figures`. `total` hears, once, how many
    units `progress` will count (a person's face, then a lip-sync clip), so a bar can show an ETA.
    `face_scores`: the raw `--face-voice` tree the corpus came from, for the face-score probe."""
    people = corpus_people(Path(data), split, max_people)
    lip_sync = s2tf.can_embed_faces  # lip sync needs a face encoder for identity and pose
    if total:
        total(len(people) + (len(talking_people(people, sync_clips)) if lip_sync else 0))
    row = identity_metrics(s2tf, people, progress)
    generated = row.pop("_generated")
    expert = None
    if syncnet is not None:
        from .syncnet import SyncNet

        expert = SyncNet.load(syncnet)
    if lip_sync:
        row.update(lip_sync_metrics(s2tf, people, sync_clips, seed, expert, progress))
        row.update(mouth_probe(s2tf, people))
        if face_scores is not None:
            from .face_voice import face_score_probe

            row.update(face_score_probe(s2tf, Path(data), Path(face_scores), split, max_people))
    reals: list[Person] = []
    if real_voices is not None:
        reals = real_people(Path(real_voices), s2tf.cfg.image_size)
        row.update(real_people_metrics(s2tf, reals, held_out=_held_out(Path(data), reals)))
    if figures is not None:
        from .figures import write_figures

        write_figures(s2tf, figures, people, generated, reals)
    return EvalResult(people=row.pop("_people"), per_person=row.pop("_per_person"), figures=row)


def _held_out(data: Path, reals: list[Person]) -> set[str]:
    """Real people whose identity is not in the corpus's training split (`<source>-<person>` names)."""
    trained = {r["identity"].split("-", 1)[-1] for r in read_manifest(data) if r["split"] == "train"}
    return {p.name for p in reals if p.name not in trained}
