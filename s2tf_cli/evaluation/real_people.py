"""`s2tf eval-people`: the model on real people it never trained on (the validation people of
data/holdout.py), judged by networks that are not part of it.

- gender: the age/gender classifier's reading of the face drawn from each voice clip, against the
  speaker's label (VoxCeleb1, RAVDESS) or, where there is none (AVSpeech), the same classifier's reading
  of the speaker's own photo; balanced accuracy and each gender's.
- retrieval: each clip ranks one photo per validation person by the model's own cosine, exactly as
  `s2tf retrieve` does: median rank and R@10 against chance.
- realism and variety in dlib's face-recognition embedding: KID of the faces from voices to the real
  photos, and the mean distance between faces from different people's voices over that between photos of
  different people; `-n` samples too.
- pose: `face --pose REF` for every validation photo, the head's yaw, pitch and roll measured on dlib's
  68 landmarks of the reference and of the output (yaw: the nose tip's offset from the eyes' midpoint
  over the eye distance; pitch: its drop below that midpoint over the eye distance; roll: the eye line's
  angle in radians).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..data.faceset import is_s2f, s2f_genders, s2f_people
from ..data.holdout import is_validation
from ..data.sources import AUDIO_SUFFIXES, real_voice_identities
from ..errors import InputError, NoFaceError
from . import metrics as M

log = logging.getLogger(__name__)

RAVDESS_UTTERANCES = 3  # per held-out actor: the first recordings, sorted by name
SAMPLES = 4  # `-n` faces per voice for the sampling figures
SAMPLED_VOICES = 12


@dataclass
class RealPerson:
    name: str
    source: str
    photo: Path
    voices: list[Path]
    gender: str = "unknown"  # label; "unknown" is replaced by the judge's reading of the photo
    gender_from: str = "label"
    photos: list[Path] = field(default_factory=list)  # every photo (pose references, the real side of KID)


def validation_people(s2f: Path | None, ravdess: Path | None) -> list[RealPerson]:
    people = []
    if s2f is not None:
        if not is_s2f(Path(s2f)):
            raise FileNotFoundError(f"{s2f}: not an s2f folder (people.csv with voxceleb/ and avspeech/)")
        genders = s2f_genders(Path(s2f))
        for name, folder in s2f_people(Path(s2f)):
            if not is_validation("s2f", name):
                continue
            voices = sorted(p for p in folder.iterdir() if p.suffix.lower() in AUDIO_SUFFIXES)
            photos = [v.with_suffix(".jpg") for v in voices if v.with_suffix(".jpg").is_file()]
            photos = [ph for ph in photos if _has_face(ph)]
            if voices and photos:
                people.append(RealPerson(name, "s2f", photos[0], voices, genders.get(name, "unknown"), photos=photos))
    if ravdess is not None:
        for p in real_voice_identities(ravdess):
            actor = p.name.split("-", 1)[1]
            if is_validation("ravdess", actor) and _has_face(p.photos[0]):
                people.append(RealPerson(actor, "ravdess", p.photos[0], p.voices[:RAVDESS_UTTERANCES], p.gender,
                                         photos=list(p.photos)))  # fmt: skip
    return people


def _has_face(photo: Path) -> bool:
    """Whether inference's face finder finds a face: a photo it cannot crop can be no gallery entry or
    pose reference, for any model."""
    from ..faces import find_face
    from ..images import load_image

    return find_face(load_image(photo), 64)[0] is not None


def head_pose(points: np.ndarray) -> tuple[float, float, float]:
    """(yaw, pitch, roll) of dlib's 68 landmarks, as the module docstring defines them."""
    from ..data.pose_labels import pose_of

    return pose_of(points[36:42].mean(0), points[42:48].mean(0), points[30])


class PoseJudge:
    """dlib's 68 landmarks on a 256-px upscale of a face crop; None where no face is found."""

    def __init__(self) -> None:
        from ..judges.landmarks import landmarks68

        self._landmarks = landmarks68

    def __call__(self, image: np.ndarray) -> tuple[float, float, float] | None:
        import cv2

        up = cv2.resize(image, (256, 256), interpolation=cv2.INTER_CUBIC) if image.shape[0] < 256 else image
        pts = self._landmarks(np.ascontiguousarray(up))
        return None if pts is None else head_pose(pts)


def mean_pairwise_distance(vectors: np.ndarray, owners: np.ndarray | None = None) -> float:
    """Mean distance between rows; with `owners`, only between rows of different owners (people)."""
    d = np.linalg.norm(vectors[:, None] - vectors[None], axis=-1)
    who = np.arange(len(vectors)) if owners is None else np.asarray(owners)
    apart = who[:, None] != who[None]
    return float(d[apart].mean()) if apart.any() else float("nan")


def gender_figures(judged: list[str], truth: list[str]) -> dict:
    out = {}
    for g in ("male", "female"):
        sel = [j == t for j, t in zip(judged, truth) if t == g]
        out[f"gender {g} %"] = float(100 * np.mean(sel)) if sel else float("nan")
        out[f"{g} clips"] = len(sel)
    out["gender balanced %"] = float(np.nanmean([out["gender male %"], out["gender female %"]]))
    return out


def retrieval_figures(scores: np.ndarray, truth: list[int]) -> dict:
    r = M.ranks(scores, truth)
    n = scores.shape[1]
    return {"gallery": n, "median rank": float(np.median(r)), "R@10 %": float(100 * np.mean(r <= 10)),
            "R@10 chance %": float(100 * min(10, n) / n), "ranks": r.tolist()}  # fmt: skip


def pose_figures(ref: list[tuple[float, float, float]], out: list[tuple[float, float, float]]) -> dict:
    ref_a, out_a = np.array(ref), np.array(out)
    res = {"pose refs": len(ref)}
    for k, name in enumerate(("yaw", "pitch", "roll")):
        res[f"{name} corr"] = M.correlation(out_a[:, k], ref_a[:, k], minimum=3)
        res[f"{name} MAE"] = float(np.abs(out_a[:, k] - ref_a[:, k]).mean())
    res["yaw MAE frontal"] = float(np.abs(ref_a[:, 0] - np.median(ref_a[:, 0])).mean())  # always answering straight
    res["yaw spread"] = float(ref_a[:, 0].std())
    return res


def evaluate_people(s2tf, people: list[RealPerson], embedder=None, judge=None, pose_judge=None,
                    progress: Callable[[int], None] | None = None) -> dict:  # fmt: skip
    """Every figure of the module docstring for one loaded model (`S2TF`)."""
    from ..images import load_image
    from ..judges.attributes import AttributeClassifier
    from ..judges.embedder import FaceEmbedder

    embedder = embedder or FaceEmbedder()
    judge = judge or AttributeClassifier()
    pose_judge = pose_judge or PoseJudge()
    for p in people:
        if p.gender not in ("male", "female"):
            p.gender, p.gender_from = judge(load_image(p.photo)).gender, "judge on the photo"
    clips, f_a, faces, refused, heard = [], [], [], [], []
    for p in people:
        kept = []
        for voice in p.voices:
            try:
                kept.append((voice, s2tf.voice_identity(voice)))
            except InputError as exc:  # the model refuses the clip (e.g. "no speech found"): counted, not scored
                refused.append(str(exc))
            if progress:
                progress(1)
        if kept:
            heard.append(p)
            for voice, f in kept:
                clips.append((len(heard) - 1, voice))
                f_a.append(f)
                faces.append(s2tf.face_from_identity(f)[0])
    people = heard
    out: dict = {"people": len(people), "clips": len(clips), "refused clips": refused}
    judged = [judge(f).gender for f in faces]
    out |= gender_figures(judged, [people[i].gender for i, _ in clips])
    f_v = torch.stack([s2tf.face_identity(p.photo) for p in people])
    scores = (F.normalize(torch.stack(f_a).float(), dim=-1) @ F.normalize(f_v.float(), dim=-1).T).cpu().numpy()
    out |= retrieval_figures(scores, [i for i, _ in clips])
    e_fake = embedder.embed_many(faces)
    e_real = embedder.embed_many([load_image(ph) for p in people for ph in p.photos])
    out["KID"] = M.kid(e_real, e_fake)
    # faces from different people's voices, each clip's own face (a person's faces averaged first sit closer
    # to everyone's: that read 0.864 where this reads 0.882), against photos of different people
    out["variety"] = mean_pairwise_distance(e_fake, np.array([i for i, _ in clips]))
    out["variety photos"] = mean_pairwise_distance(
        e_real, np.array([j for j, p in enumerate(people) for _ in p.photos])
    )
    out["variety ratio"] = out["variety"] / out["variety photos"]
    spreads, agree = [], []
    for j in range(min(SAMPLED_VOICES, len(people))):
        k = next(k for k, (i, _) in enumerate(clips) if i == j)
        samples = s2tf.face_from_identity(f_a[k], seed=1, n_samples=SAMPLES)
        spreads.append(mean_pairwise_distance(embedder.embed_many(samples)))
        agree += [judge(s).gender == people[j].gender for s in samples]
    out["sample spread"] = float(np.mean(spreads))
    out["sample gender %"] = float(100 * np.mean(agree))
    refs, outs, yaw_error = [], [], []
    photos = [ph for p in people for ph in p.photos if p.source == "s2f"]
    for k, ph in enumerate(photos):
        image = load_image(ph)
        ref, got = pose_judge(image), None
        if ref is not None:
            try:
                got = pose_judge(s2tf.face_from_identity(f_a[k % len(f_a)], pose=image)[0])
            except NoFaceError as exc:  # the model's own face finder may miss a face dlib found
                log.info("%s: no pose reference for the model (%s)", ph, exc)
        if ref is not None and got is not None:
            refs.append(ref)
            outs.append(got)
        yaw_error.append(abs(got[0] - ref[0]) if ref is not None and got is not None else float("nan"))
    out |= pose_figures(refs, outs) if len(refs) >= 3 else {"pose refs": len(refs)}
    ranks = np.array(out["ranks"])
    truth = [people[i].gender for i, _ in clips]
    out["per item"] = {"gender correct %": [100.0 * (j == t) for j, t in zip(judged, truth)],
                       "R@10 %": list(100.0 * (ranks <= 10)), "mean rank": list(ranks.astype(float)),
                       "yaw abs error": yaw_error}  # fmt: skip
    out["gender sources"] = {p.name: p.gender_from for p in people}
    out["first faces"] = [faces[next(k for k, (i, _) in enumerate(clips) if i == j)] for j in range(len(people))]
    out["scored people"] = people
    return out


def talking_figures(s2tf, clips: list[Path], pose_judge: PoseJudge | None = None, syncnet=None) -> dict:
    """`talk` on real talking clips, each with its own audio and its own video as `--pose`: the per-frame
    yaw of the output against the video's (does the head follow the video), and the mouth opening of the
    output against the real speaker's (lip sync), with the clip's audio reversed as the control. Medians
    over clips. With a sync expert, also its offset and confidence on the still-pose frames (`real_sync`
    gives the same for the real frames: whether the expert itself reads real faces)."""
    from .. import audio as audio_io
    from ..face_track import read_video
    from ..judges.landmarks import landmarks68
    from .protocol import frame_landmarks, mouth_openings

    pose_judge = pose_judge or PoseJudge()
    yaw, mouth, control, still, flicker = [], [], [], [], []
    sync: list[tuple[int, float, float]] = []
    for clip in clips:
        real = read_video(clip, 25.0)
        wave = audio_io.load_audio(clip, s2tf.cfg.audio.sample_rate)
        real_pts = frame_landmarks(real, landmarks68)
        # the first frame as a still pose, nothing moving but what the voice moves
        _, frames = s2tf.talk_frames(wave, pose=real[0], motion="none")
        gen = np.stack(list(frames))[: len(real)]
        gen_pts = frame_landmarks(gen, landmarks68)
        m = min(len(gen_pts), len(real_pts))
        still.append(M.correlation(mouth_openings(gen_pts[:m]), mouth_openings(real_pts[:m])))
        flicker.append(speech_flicker(gen))
        if syncnet is not None:
            sync.append(sync_reading(syncnet, gen, wave))
        for voice, into in ((wave, mouth), (wave[::-1].copy(), control)):
            n, frames = s2tf.talk_frames(voice, pose=clip)
            gen = np.stack(list(frames))[: len(real)]
            gen_pts = frame_landmarks(gen, landmarks68)
            m = min(len(gen_pts), len(real_pts))
            into.append(M.correlation(mouth_openings(gen_pts[:m]), mouth_openings(real_pts[:m])))
            if into is mouth:
                pairs = [(head_pose(g)[0], head_pose(r)[0]) for g, r in zip(gen_pts[:m], real_pts[:m])
                         if g is not None and r is not None]  # fmt: skip
                yaw.append(M.correlation(np.array([a for a, _ in pairs]), np.array([b for _, b in pairs]))
                           if len(pairs) >= 5 else float("nan"))  # fmt: skip
    out = sync_figures(sync, clips) if syncnet is not None else {}
    return out | {"talk clips": len(clips), "talk yaw corr": _median(yaw), "talk mouth corr": _median(mouth),
            "talk mouth corr reversed": _median(control), "talk still mouth corr": _median(still),
            "talk flicker": _median(flicker),
            "talk per clip": {Path(c).name: {"yaw": y, "mouth": mo, "reversed": co, "still mouth": st, "flicker": fl}
                              for c, y, mo, co, st, fl in zip(clips, yaw, mouth, control, still, flicker)}}  # fmt: skip


def sync_reading(syncnet, frames: np.ndarray, wave: np.ndarray) -> tuple[int, float, float]:
    """(offset, confidence, confidence against the clip's audio rolled by half its length): the control
    says what confidence the expert gives a mouth that does not go with the audio."""
    from .syncnet import offsets_and_confidence

    offset, conf, _ = offsets_and_confidence(syncnet, frames, wave)
    _, rolled, _ = offsets_and_confidence(syncnet, frames, np.roll(wave, len(wave) // 2))
    return offset, conf, rolled


def sync_figures(readings: list[tuple[int, float, float]], clips: list[Path]) -> dict:
    offsets = np.array([r[0] for r in readings])
    return {"talk sync offset 0 %": float(100 * np.mean(offsets == 0)) if len(offsets) else float("nan"),
            "talk sync conf": _median([r[1] for r in readings]),
            "talk sync conf rolled": _median([r[2] for r in readings]),
            "talk sync offsets": {Path(c).name: int(o) for c, o in zip(clips, offsets)}}  # fmt: skip


def real_sync(syncnet, clips: list[Path], size: int = 128) -> dict:
    """The sync expert on the real clips' own face crops: an expert learnt on one corpus may not read
    another's faces, and then its verdict on a model that draws such faces says little."""
    from .. import audio as audio_io
    from ..face_track import face_crops

    readings = [sync_reading(syncnet, face_crops(Path(c), 25.0, size), audio_io.load_audio(c, syncnet.cfg.audio.sample_rate))
                for c in clips]  # fmt: skip
    return sync_figures(readings, clips)


def speech_flicker(frames: np.ndarray) -> float:
    """Mean frame-to-frame change outside the speech region over that inside the mouth box, for frames
    with a still pose: 0 when speech moves the mouth alone, 1 when hair and background change as much."""
    from ..training.losses import SPEECH_REGION, ReconstructionLoss

    if len(frames) < 2:
        return float("nan")
    change = np.abs(np.diff(frames.astype(np.float32), axis=0)).mean(axis=(0, -1))
    s = change.shape[0]
    outside = np.ones(change.shape, bool)
    r0, r1, c0, c1 = (int(round(f * s)) for f in SPEECH_REGION)
    outside[r0:r1, c0:c1] = False
    m0, m1, n0, n1 = (int(f * s) for f in ReconstructionLoss.MOUTH)
    mouth = float(change[m0:m1, n0:n1].mean())
    return float(change[outside].mean()) / mouth if mouth > 0 else float("nan")


def _median(values: list[float]) -> float:
    """Median over the finite values (NaN where a clip had too few landmarked frames); NaN if none."""
    finite = [v for v in values if v == v]
    return float(np.median(finite)) if finite else float("nan")


def comparison_grid(people: list[RealPerson], rows: dict[str, list[np.ndarray]], count: int = 12) -> np.ndarray:
    """Columns: validation people; first row their photo, then one row per model of the face from their
    first voice clip."""
    import cv2

    from ..faces import find_face
    from ..images import grid, load_image

    size = 128
    tiles = []
    chosen = list(range(min(count, len(people))))
    for j in chosen:
        crop, _ = find_face(load_image(people[j].photo), size)
        tiles.append(crop if crop is not None else cv2.resize(load_image(people[j].photo), (size, size)))
    for faces in rows.values():
        tiles += [cv2.resize(faces[j], (size, size), interpolation=cv2.INTER_CUBIC) for j in chosen]
    return grid(tiles, columns=len(chosen))
