"""Corpus tools: espeak-ng phoneme timings, mouth animation, `data synth` and `data prepare`."""

import json

import numpy as np
import pytest
import soundfile as sf
from conftest import speechlike

from s2tf_cli.data.animate import (
    FaceAnimator,
    HeadDrift,
    openness_from_envelope,
    openness_from_phonemes,
    phoneme_openness,
)  # fmt: skip
from s2tf_cli.data.espeak import Espeak, Phoneme
from s2tf_cli.data.prepare import PrepareOptions, find_clips, prepare_corpus, split_of
from s2tf_cli.data.sources import Identity, face_identities, real_voice_identities
from s2tf_cli.data.voices import face_directions, face_scores, speak, voice_profile
from s2tf_cli.images import load_image
from s2tf_cli.judges.landmarks import landmarks68


def test_espeak_reports_phonemes_in_order():
    wave, sr, phonemes = Espeak.get().synth("hello world", "en+m3")
    assert sr == 22050 and len(wave) > 0.5 * sr
    symbols = [p.symbol for p in phonemes]
    assert symbols[:4] == ["h", "@", "l", "oU"]
    starts = [p.start for p in phonemes]
    assert starts == sorted(starts) and 0 <= starts[0] < 0.1 and starts[-1] <= len(wave) / sr + 0.05


def test_voice_profiles_follow_labels(face_folders):
    idents = face_identities(face_folders["celeb"])
    rng = np.random.default_rng(0)
    male = voice_profile(idents[0], rng)
    female = voice_profile(idents[1], rng)
    assert idents[0].gender == "male" and "+m" in male.variant and "+f" in female.variant
    unlabelled = Identity("x", [], gender="unknown")
    assert "+f" in voice_profile(unlabelled, rng, apparent_gender="female").variant
    assert "+m" in voice_profile(idents[0], rng, apparent_gender="female").variant, "a label wins"
    wave, phonemes = speak("a short test", male)
    assert wave.dtype == np.float32 and np.abs(wave).max() <= 0.51 and phonemes


def _median_f0(wave: np.ndarray) -> float:
    import librosa

    f0, voiced, _ = librosa.pyin(wave, fmin=50, fmax=450, sr=16000, frame_length=1024)
    return float(np.median(f0[voiced]))


def test_synthetic_voices_speak_at_adult_pitch():
    """Real men speak at ~85-165 Hz, women at ~165-260 Hz: a synthetic corpus far outside those ranges
    teaches the audio encoder a gender cue that real voices do not carry."""
    rng = np.random.default_rng(3)
    f0 = {g: [_median_f0(speak("She had your dark suit in greasy wash water.",
                                voice_profile(Identity(g, [], gender=g, age=35), rng))[0]) for _ in range(3)]
          for g in ("male", "female")}  # fmt: skip
    assert all(85 < f < 165 for f in f0["male"]), f0
    assert all(165 < f < 260 for f in f0["female"]), f0


def test_face_share_ties_the_voice_to_the_face_and_keeps_the_random_draws():
    """`face_share` s: pitch, tract, tilt and rate correlate ~s with the face's scores, their spread
    stays, and every other setting (and share 0) is what the same seed gave before the option."""
    person = Identity("p", [], gender="male", age=35)
    zs = np.random.default_rng(99).standard_normal((300, 4))
    plain = [voice_profile(person, np.random.default_rng(i)) for i in range(300)]
    zero = [voice_profile(person, np.random.default_rng(i), face_z=zs[i], face_share=0.0) for i in range(300)]
    tied = [voice_profile(person, np.random.default_rng(i), face_z=zs[i], face_share=0.8) for i in range(300)]
    assert zero == plain
    for a, b in zip(plain, tied):
        assert (a.variant, a.pitch_range, a.wordgap) == (b.variant, b.pitch_range, b.wordgap)
    for k, name in enumerate(["pitch", "tract", "tilt", "rate"]):
        before = np.array([getattr(p, name) for p in plain], float)
        after = np.array([getattr(p, name) for p in tied], float)
        assert np.corrcoef(after, zs[:, k])[0, 1] > 0.65, name
        assert abs(np.corrcoef(before, zs[:, k])[0, 1]) < 0.2, name
        assert 0.75 < after.std() / before.std() < 1.25, name
    with pytest.raises(ValueError, match="needs the face's scores"):
        voice_profile(person, np.random.default_rng(0), face_share=0.5)
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        voice_profile(person, np.random.default_rng(0), face_z=zs[0], face_share=1.5)


def test_face_scores_are_population_z_scores_of_the_mean_embedding():
    from s2tf_cli.data.voices import FACE_PROJECTION_MEAN, FACE_PROJECTION_SD

    d = face_directions()
    assert np.allclose(np.linalg.norm(d, axis=1), 1) and np.array_equal(d, face_directions())
    at_mean = np.linalg.pinv(d) @ FACE_PROJECTION_MEAN  # an embedding projecting onto the population mean
    assert np.allclose(face_scores(at_mean[None]), 0, atol=1e-9)
    one_sd = at_mean + np.linalg.pinv(d) @ (FACE_PROJECTION_SD * np.array([1, 0, 0, -2]))
    assert np.allclose(face_scores(one_sd[None]), [1, 0, 0, -2])
    photos = np.random.default_rng(0).standard_normal((3, 128)) * 0.1
    assert np.allclose(face_scores(photos), face_scores(photos.mean(0, keepdims=True)))


def test_sources_read_labels(face_folders):
    flat = face_identities(face_folders["flat"])
    assert flat[0].age == 30 and flat[0].gender == "female" and flat[0].ethnicity == "asian"
    real = real_voice_identities(face_folders["real"])
    assert real[0].gender == "male" and len(real[0].voices) == 2


def test_openness_from_phonemes():
    phonemes = [Phoneme("_", 0.0), Phoneme("m", 0.2), Phoneme("a:", 0.3), Phoneme("p", 0.5), Phoneme("_", 0.6)]
    curve = openness_from_phonemes(phonemes, 1.0, 25)
    assert len(curve) == 25
    assert curve[1] == 0 and curve[-2] == 0, "silence keeps the mouth closed"
    assert curve[10] > 0.8  # 0.42 s: inside "a:"
    assert phoneme_openness("p") == 0 and phoneme_openness("aI") == 1.0


def test_openness_from_envelope_follows_loudness():
    wave = np.concatenate([np.zeros(8000, np.float32), speechlike(1.0, seed=1), np.zeros(8000, np.float32)])
    curve = openness_from_envelope(wave, 16000, 25)
    assert len(curve) == 50
    assert curve[:10].max() == 0 and curve[-10:].max() == 0 and curve[15:35].max() > 0.5


def test_animator_moves_the_mouth_only(pose_image):
    image = load_image(pose_image)
    marks = landmarks68(image)
    assert marks is not None and marks.shape == (68, 2)
    still = HeadDrift(np.zeros((4, 2)), np.zeros((4, 2)), np.zeros(4))
    anim = FaceAnimator(image, marks, 96, still)
    closed, wide = anim.frame(0.0, 0.0), anim.frame(1.0, 0.0)
    assert closed.shape == (96, 96, 3)
    diff = np.abs(closed.astype(int) - wide.astype(int)).sum(axis=2)
    rows = np.nonzero(diff.max(axis=1) > 30)[0]
    assert rows.size and rows.min() > 96 * 0.45, "only the lower face changes"
    drifting = FaceAnimator(image, marks, 96, HeadDrift.random(np.random.default_rng(0)))
    assert not np.array_equal(drifting.frame(0.0, 0.0), drifting.frame(0.0, 1.0)), "the head drifts"


def _decode(path):
    from s2tf_cli.audio import load_audio
    from s2tf_cli.data.prepare import read_frames

    return read_frames(path), load_audio(path)


def test_synth_writes_voxceleb_layout(raw_corpus):
    clips = find_clips(raw_corpus)
    ids = {c.relative_to(raw_corpus).parts[0] for c in clips}
    assert ids == {"celeb-id0001", "celeb-id0002", "flat-30_1_2_20170101000000000", "real-Actor_01"}
    assert len(clips) == 8
    meta = (raw_corpus / "meta.csv").read_text().splitlines()
    assert meta[0] == "identity,gender,age,ethnicity,source,voice" and len(meta) == 5
    assert "real-Actor_01,male,,unknown,real,real" in meta
    frames, audio = _decode(clips[0])
    assert frames.shape[1:] == (96, 96, 3)
    assert abs(len(frames) - np.ceil(len(audio) / 16000 * 25)) <= 1


def test_synth_mouth_is_aligned_with_the_audio(raw_corpus):
    """Mouth-region change against the first (silent, closed) frame tracks the loudness envelope;
    the best lag between them is within one frame."""
    clip = next(c for c in find_clips(raw_corpus) if c.parts[-3].startswith("celeb"))
    frames, audio = _decode(clip)
    n = min(len(frames), int(len(audio) / 640))
    mouth = frames[:n, 55:85, 30:66].astype(float)
    motion = np.abs(mouth - mouth[0]).mean(axis=(1, 2, 3))
    loud = np.array([np.sqrt(np.mean(audio[i * 640 : (i + 1) * 640] ** 2)) for i in range(n)])
    best = max(range(-3, 4), key=lambda lag: np.corrcoef(np.roll(loud, lag)[4:-4], motion[4:-4])[0, 1])
    assert abs(best) <= 1
    assert np.corrcoef(loud, motion)[0, 1] > 0.3


def test_synth_is_deterministic(face_folders, tmp_path):
    from s2tf_cli.data.synth import SynthOptions, synth_corpus

    outs = []
    for name in ("a", "b"):
        opts = SynthOptions(tmp_path / name, identities=1, clips_per_identity=1, seed=5, workers=1, size=64)
        synth_corpus([face_folders["celeb"]], [], opts)
        clip = find_clips(tmp_path / name)[0]
        outs.append((clip.relative_to(tmp_path / name), *_decode(clip)))
    assert outs[0][0] == outs[1][0]
    assert np.array_equal(outs[0][2], outs[1][2])
    assert np.abs(outs[0][1].astype(int) - outs[1][1].astype(int)).mean() < 0.5


def _open_mouth_photo(pose_image, path):
    """The example face with its mouth animated wide open, saved as a photo."""
    from PIL import Image

    image = load_image(pose_image)
    still = HeadDrift(np.zeros((4, 2)), np.zeros((4, 2)), np.zeros(4))
    Image.fromarray(FaceAnimator(image, landmarks68(image), 224, still).frame(1.0, 0.0)).save(path)
    return path


def test_synth_uses_photos_whose_mouth_is_closed(pose_image, tmp_path):
    """Silence keeps the photo's own mouth, so an open-mouthed photo is passed over; a person with
    no other photo is skipped, counted, and the next candidate takes the place."""
    from PIL import Image

    from s2tf_cli.data.synth import PARTED_MOUTH, SynthOptions, rest_photos, synth_corpus
    from s2tf_cli.judges.landmarks import mouth_opening

    faces = tmp_path / "faces"
    for name in ("id0001", "id0002", "id0003"):
        (faces / name).mkdir(parents=True)
    _open_mouth_photo(pose_image, faces / "id0001" / "000000.jpg")
    Image.open(pose_image).save(faces / "id0001" / "000001.jpg")
    _open_mouth_photo(pose_image, faces / "id0002" / "000000.jpg")
    Image.open(pose_image).save(faces / "id0003" / "000000.jpg")
    assert mouth_opening(landmarks68(load_image(faces / "id0001" / "000000.jpg"))) > PARTED_MOUTH

    chosen = rest_photos(sorted((faces / "id0001").iterdir()), 2)
    assert [p.name for p, _, _ in chosen] == ["000001.jpg"]
    assert rest_photos([faces / "id0002" / "000000.jpg"], 2) == []
    assert len(rest_photos([faces / "id0002" / "000000.jpg"], 2, most_open=float("inf"))) == 1  # real voices

    opts = SynthOptions(tmp_path / "raw", identities=2, clips_per_identity=2, seed=1, workers=1, size=64)
    summary = synth_corpus([faces], [], opts)
    assert summary["identities"] == 2 and summary["skipped"] == 1 and summary["clips"] == 4
    made = {c.relative_to(opts.out).parts[:2] for c in find_clips(opts.out)}
    assert {ident for ident, _ in made} == {"faces-id0001", "faces-id0003"}
    assert len({v for ident, v in made if ident == "faces-id0001"}) == 1, "both clips from the closed photo"
    frames, _ = _decode(next(c for c in find_clips(opts.out) if c.parts[-3] == "faces-id0001"))
    assert mouth_opening(landmarks68(np.array(Image.fromarray(frames[0]).resize((224, 224))))) < PARTED_MOUTH
    meta = (opts.out / "meta.csv").read_text().splitlines()
    assert sorted(m.split(",")[0] for m in meta[1:]) == ["faces-id0001", "faces-id0003"]
    # no gender label: the voice follows the face's apparent gender (a man's, in the example photo)
    voice = json.loads((opts.out / "faces-id0001" / "voice.json").read_text())
    assert voice["gender_from"] == "photo" and "+m" in voice["variant"]


def test_prepare_shards_manifest_and_splits(prepared_corpus, raw_corpus):
    rows = [json.loads(x) for x in (prepared_corpus / "manifest.jsonl").read_text().splitlines()]
    assert len(rows) == 8
    assert {r["split"] for r in rows} == {"train"}
    assert sorted({r["label"] for r in rows}) == [0, 1, 2, 3]
    r = rows[0]
    with np.load(prepared_corpus / r["path"], allow_pickle=False) as shard:
        assert len(shard["offsets"]) - 1 == r["frames"] and len(shard["audio"]) == r["samples"]
        assert int(shard["size"]) == 32
    summary = json.loads((prepared_corpus / "corpus.json").read_text())
    assert summary["clips"] == 8 and summary["skipped"] == 0


def test_split_is_stable_per_identity():
    assert split_of("id0001", 0.05, 0.1) == split_of("id0001", 0.05, 0.1)
    splits = [split_of(f"person{i}", 0.05, 0.1) for i in range(2000)]
    assert 0.07 < splits.count("test") / 2000 < 0.13 and 0.03 < splits.count("val") / 2000 < 0.07


def test_prepare_counts_skips_and_resumes(raw_corpus, tmp_path):
    import shutil

    import imageio_ffmpeg

    root = tmp_path / "root"
    shutil.copytree(raw_corpus / "celeb-id0001", root / "celeb-id0001")
    # a clip with no face and one with no audio track, in the same layout
    blank = root / "nobody" / "v1"
    blank.mkdir(parents=True)
    sf.write(tmp_path / "voice.wav", speechlike(1.0), 16000)
    w = imageio_ffmpeg.write_frames(str(blank / "00001.mp4"), (64, 64), fps=25, macro_block_size=1,
                                    audio_path=str(tmp_path / "voice.wav"), audio_codec="aac")  # fmt: skip
    w.send(None)
    for _ in range(20):
        w.send(np.full((64, 64, 3), 128, np.uint8))
    w.close()
    silent = root / "mute" / "v1"
    silent.mkdir(parents=True)
    src = next((raw_corpus / "celeb-id0001").glob("*/*.mp4"))
    import subprocess

    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-i", str(src), "-an", "-c:v", "copy",
                    str(silent / "00001.mp4")], check=True)  # fmt: skip
    out = tmp_path / "out"
    summary = prepare_corpus(PrepareOptions(root, out, size=32, workers=1))
    assert summary["clips"] == 2 and summary["skipped"] == 2
    skipped = (out / "skipped.csv").read_text()
    assert "nobody/v1/00001.mp4,no face" in skipped and "mute/v1/00001.mp4,no audio" in skipped
    shard = next(out.glob("clips/*/*/*.npz"))
    before = shard.stat().st_mtime_ns
    assert prepare_corpus(PrepareOptions(root, out, size=32, workers=1))["clips"] == 2
    assert shard.stat().st_mtime_ns == before, "finished shards are kept"


def test_cli_data_synth_then_prepare(face_folders, tmp_path):
    """The commands a researcher types: exit codes, summaries on stdout, a manifest at the end."""
    from typer.testing import CliRunner

    from s2tf_cli.cli import app

    runner = CliRunner()
    raw, prepared = tmp_path / "raw", tmp_path / "prepared"
    result = runner.invoke(app, ["data", "synth", str(raw), "--faces", str(face_folders["celeb"]),
                                 "-n", "1", "-k", "1", "-j", "1", "--seed", "2"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "clips=1" in result.output
    assert len(find_clips(raw)) == 1
    result = runner.invoke(app, ["data", "prepare", str(raw), str(prepared), "--size", "32", "-j", "1"])
    assert result.exit_code == 0, result.output
    assert len((prepared / "manifest.jsonl").read_text().splitlines()) == 1


def test_cli_data_synth_face_voice(face_folders, tmp_path):
    """`--face-voice`: the voice records the face's scores and keeps the settings chance gave it; a
    share outside [0, 1] is refused before anything is written."""
    from typer.testing import CliRunner

    from s2tf_cli.cli import app

    runner = CliRunner()
    voices = []
    for share in ("0", "0.8"):
        out = tmp_path / share
        result = runner.invoke(app, ["data", "synth", str(out), "--faces", str(face_folders["celeb"]), "-n", "1",
                                     "-k", "1", "-j", "1", "--seed", "4", "--face-voice", share])  # fmt: skip
        assert result.exit_code == 0, result.output
        voices.append(json.loads(next(out.glob("*/voice.json")).read_text()))
    plain, tied = voices
    assert "face_z" not in plain and tied["face_share"] == 0.8
    assert len(tied["face_z"]) == 4 and all(np.isfinite(tied["face_z"])) and any(tied["face_z"])
    assert all(plain[k] == tied[k] for k in ("variant", "pitch_range", "wordgap", "gender_from"))
    result = runner.invoke(app, ["data", "synth", str(tmp_path / "bad"), "--faces", str(face_folders["celeb"]),
                                 "--face-voice", "1.5"])  # fmt: skip
    assert result.exit_code == 2 and "--face-voice" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "bad").exists()


def test_cli_data_synth_needs_a_source(tmp_path):
    from typer.testing import CliRunner

    from s2tf_cli.cli import app

    result = CliRunner().invoke(app, ["data", "synth", str(tmp_path / "raw")])
    assert result.exit_code == 2
    assert "--faces" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "raw").exists()


def test_cli_data_synth_without_espeak_fails_before_writing(face_folders, tmp_path, monkeypatch):
    """A missing espeak-ng is an install to do, said in one line with exit code 2 before any identity
    is made, not an internal error from a worker minutes in."""
    from typer.testing import CliRunner

    from s2tf_cli.cli import app
    from s2tf_cli.data import espeak

    def no_library(name):
        raise OSError(f"{name}: cannot open shared object file")

    monkeypatch.setattr(espeak.ctypes, "CDLL", no_library)
    out = tmp_path / "raw"
    result = CliRunner().invoke(app, ["data", "synth", str(out), "--faces", str(face_folders["celeb"]), "-n", "1"])
    assert result.exit_code == 2, result.output
    assert "espeak-ng is not installed" in result.output and "apt-get install espeak-ng" in result.output
    assert "unexpected" not in result.output and "Traceback" not in result.output
    assert not out.exists()


def test_manifest_round_trip_and_one_line_errors(tmp_path):
    from s2tf_cli.corpus_format import is_corpus, read_manifest, write_manifest

    assert not is_corpus(tmp_path)
    with pytest.raises(FileNotFoundError, match="no manifest.jsonl \\(run `s2tf data prepare` first\\)"):
        read_manifest(tmp_path)
    rows = [
        {"path": "a/0.npz", "identity": "x", "split": "train"},
        {"path": "b/0.npz", "identity": "y", "split": "val"},
    ]
    write_manifest(tmp_path, rows)
    assert is_corpus(tmp_path) and read_manifest(tmp_path) == rows
    with open(tmp_path / "manifest.jsonl", "a") as fh:
        fh.write("\n{broken\n")
    with pytest.raises(ValueError, match="manifest.jsonl:4: not a JSON line"):
        read_manifest(tmp_path)
