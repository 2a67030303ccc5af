"""The Python API: determinism, seeds, poses, frame counts and ranking."""

import math

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import music, speechlike

from s2tf_cli.audio import load_audio
from s2tf_cli.errors import InputError, NoFaceError, UsageError


def test_face_is_deterministic_and_shaped(pipeline, voices):
    a = pipeline.face(voices["low"])
    b = pipeline.face(voices["low"])
    size = pipeline.cfg.image_size
    assert len(a) == 1 and a[0].shape == (size, size, 3) and a[0].dtype == np.uint8
    assert np.array_equal(a[0], b[0])


def test_different_voices_give_different_faces(pipeline, voices):
    assert not np.array_equal(pipeline.face(voices["low"])[0], pipeline.face(voices["high"])[0])


def test_seeds_and_samples(pipeline, voices):
    plain = pipeline.face(voices["low"], n_samples=3)
    assert len(plain) == 3
    assert np.array_equal(plain[0], pipeline.face(voices["low"])[0]), "sample 0 is the deterministic estimate"
    assert not np.array_equal(plain[0], plain[1]) and not np.array_equal(plain[1], plain[2])
    s1, s1_again, s2 = (pipeline.face(voices["low"], seed=s)[0] for s in (1, 1, 2))
    assert np.array_equal(s1, s1_again) and not np.array_equal(s1, s2)


def test_sampled_identity_stays_near_the_estimate(pipeline):
    f = torch.nn.functional.normalize(torch.randn(pipeline.cfg.id_dim), dim=0)
    g = pipeline._sample_identity(f, 5)
    angle = math.acos(float(f @ g))
    assert abs(angle - pipeline.cfg.sample_jitter) < 1e-3


def test_centroid_prior_pulls_the_identity_onto_the_centroids(pipeline, monkeypatch):
    f = torch.nn.functional.normalize(
        torch.randn(pipeline.cfg.id_dim, generator=torch.Generator().manual_seed(3)), dim=0
    )
    assert torch.equal(pipeline.drawable_identity(f), f), "prior 0 (the default) leaves f_id alone"
    w = torch.nn.functional.normalize(pipeline.model.centroids.weight.detach(), dim=-1)
    nearest = w[int(torch.argmax(w @ f))]
    monkeypatch.setattr(pipeline.cfg, "centroid_prior", 1e-4)
    sharp = pipeline.drawable_identity(f)
    assert torch.allclose(sharp, nearest, atol=1e-4), "a cold prior snaps to the nearest centroid"
    monkeypatch.setattr(pipeline.cfg, "centroid_prior", 100.0)
    hot = pipeline.drawable_identity(f)
    mean = torch.nn.functional.normalize(w.mean(0), dim=0)
    assert torch.allclose(hot, mean, atol=1e-3), "a hot prior tends to the mean centroid"
    monkeypatch.setattr(pipeline.cfg, "centroid_prior", 0.05)
    warm = pipeline.drawable_identity(f)
    assert abs(float(warm.norm()) - 1) < 1e-5 and float(warm @ nearest) > float(f @ nearest)


def test_centroid_prior_changes_faces_not_retrieval(pipeline, voices, gallery, monkeypatch):
    files = sorted(p for p in gallery.rglob("*") if p.is_file())
    scores = lambda: [(m.path.name, round(m.score, 6)) for m in pipeline.retrieve(voices["low"], files, cache=False)[0]]
    raw_face, raw_scores = pipeline.face(voices["low"])[0], scores()
    raw_frames = np.stack(list(pipeline.talk_frames(voices["low"])[1]))
    monkeypatch.setattr(pipeline.cfg, "centroid_prior", 0.05)
    assert not np.array_equal(pipeline.face(voices["low"])[0], raw_face)
    assert not np.array_equal(np.stack(list(pipeline.talk_frames(voices["low"])[1])), raw_frames)
    assert scores() == raw_scores


def test_pose_changes_the_face(pipeline, voices, pose_image):
    frontal = pipeline.face(voices["low"])[0]
    posed = pipeline.face(voices["low"], pose=pose_image)[0]
    assert not np.array_equal(frontal, posed)


def test_identity_window_averaging(pipeline):
    a = pipeline.cfg.audio
    win = int(a.identity_window_s * a.sample_rate / a.hop_length)
    mel = torch.randn(a.n_mels, int(2.5 * win))
    f = pipeline.identity_from_mel(mel)
    assert f.shape == (pipeline.cfg.id_dim,) and abs(float(f.norm()) - 1) < 1e-5
    short = pipeline.identity_from_mel(mel[:, : win // 2])
    assert short.shape == f.shape


def test_identity_windows_cover_the_clip_without_near_copies(pipeline):
    from s2tf_cli.pipeline import identity_window_starts

    a = pipeline.cfg.audio
    win = int(round(a.identity_window_s * a.sample_rate / a.hop_length))
    assert identity_window_starts(win, a) == [0]
    assert identity_window_starts(win + 7, a) == [0], "7 unheard frames are not worth a window"
    assert identity_window_starts(2 * win + 7, a) == [0, win // 2, win]
    assert identity_window_starts(2 * win + win // 3, a) == [0, win // 2, win, win + win // 3]
    for frames in range(win, 5 * win, 37):
        starts = identity_window_starts(frames, a)
        assert frames - (starts[-1] + win) < win // 4 and all(0 <= s <= frames - win for s in starts)
        assert all(0 < b - a_ <= win // 2 for a_, b in zip(starts, starts[1:])), "windows overlap, no gaps"


def test_identity_of_long_audio_is_encoded_in_chunks_with_the_same_result(pipeline):
    from s2tf_cli.pipeline import IDENTITY_BATCH, identity_windows

    a = pipeline.cfg.audio
    win = int(a.identity_window_s * a.sample_rate / a.hop_length)
    mel = torch.randn(a.n_mels, (IDENTITY_BATCH + 8) * win // 2 + win, generator=torch.Generator().manual_seed(0))
    windows = identity_windows(mel, a)
    assert len(windows) > IDENTITY_BATCH, "the clip must span more than one chunk"
    with torch.inference_mode():
        at_once = torch.nn.functional.normalize(pipeline.model.audio_identity(windows), dim=-1).mean(0)
    torch.testing.assert_close(pipeline.identity_from_mel(mel), torch.nn.functional.normalize(at_once, dim=-1),
                               atol=1e-5, rtol=1e-4)  # fmt: skip


@pytest.mark.parametrize("fps", [25.0, 30.0, 12.5])
def test_talk_frame_count_is_ceil_duration_fps(pipeline, voices, fps):
    n, frames = pipeline.talk_frames(voices["high"], fps=fps, batch_size=7)
    duration = len(load_audio(voices["high"])) / 16000
    assert n == math.ceil(duration * fps)
    frames = list(frames)
    assert len(frames) == n
    assert frames[0].shape == (pipeline.cfg.image_size,) * 2 + (3,)


def test_content_windows_centre_on_frames(pipeline):
    a = pipeline.cfg.audio
    mel = torch.arange(300, dtype=torch.float32).expand(a.n_mels, -1)
    windows = pipeline.content_windows(mel, fps=25, start=0, stop=5)
    assert windows.shape == (5, a.n_mels, a.content_window)
    centre = windows[:, 0, a.content_window // 2]
    expected = torch.tensor([round((i + 0.5) / 25 * 100) for i in range(5)], dtype=torch.float32)
    torch.testing.assert_close(centre, expected)


def test_mouth_content_follows_audio(pipeline, voices):
    """Frames over silence are identical (same content feature); frames over speech differ."""
    wave = np.concatenate([np.zeros(16000, np.float32), speechlike(1.0, seed=4)])
    n, frames = pipeline.talk_frames(wave, fps=25)
    frames = list(frames)
    assert np.array_equal(frames[5], frames[10]), "silence keeps one face"
    assert not np.array_equal(frames[30], frames[35])


def test_voice_errors(pipeline, tmp_path):
    with pytest.raises(InputError, match="at least 0.5 s"):
        pipeline.face(speechlike(0.3))
    with pytest.raises(InputError, match="no speech found"):
        pipeline.face(np.zeros(16000, np.float32))
    bad = np.ones(16000, np.float32)
    bad[5] = np.nan
    with pytest.raises(InputError, match="NaN"):
        pipeline.face(bad)
    with pytest.raises(UsageError, match="n-samples"):
        pipeline.face(speechlike(1.0), n_samples=0)


def test_pose_without_face(pipeline, tmp_path):
    from PIL import Image

    Image.fromarray(np.full((100, 100, 3), 128, np.uint8)).save(tmp_path / "blank.png")
    with pytest.raises(NoFaceError, match="blank.png: no face found"):
        pipeline.face(speechlike(1.0), pose=tmp_path / "blank.png")


def test_retrieve_ranks_by_identity_cosine(pipeline, voices, gallery):
    files = sorted(p for p in gallery.rglob("*") if p.is_file())
    matches, skipped = pipeline.retrieve(voices["low"], files)
    assert {m.path.name for m in matches} == {"a.jpg", "b.png", "c.webp"}
    assert {s.path.name for s in skipped} == {"notes.txt", "broken.jpg"}
    assert [m.rank for m in matches] == [1, 2, 3]
    assert all(a.score >= b.score for a, b in zip(matches, matches[1:]))
    f_a = pipeline.voice_identity(voices["low"])
    for m in matches:
        expected = float(pipeline.face_identity(m.path) @ f_a)
        assert abs(m.score - expected) < 1e-4


def test_retrieve_recovers_a_known_match(pipeline, voices, gallery, monkeypatch):
    """A gallery face whose visual identity (and its mirror's) equals the voice's identity must rank first, score 1."""
    f_a = pipeline.voice_identity(voices["low"])
    target = gallery / "a.jpg"
    ref = torch.stack([torch.from_numpy(pipeline._face_crop(target, False)).permute(2, 0, 1).float().div(127.5).sub(1)])
    enc = pipeline.model.visual_identity
    orig = enc.forward

    def forward(x):
        out = orig(x)
        same = torch.minimum((x - ref).abs().flatten(1).amax(1), (x - ref.flip(-1)).abs().flatten(1).amax(1)) < 1e-6
        out[same] = 3.0 * f_a
        return out

    monkeypatch.setattr(enc, "forward", forward)
    matches, _ = pipeline.retrieve(
        voices["low"], [gallery / "b.png", target, gallery / "nested" / "c.webp"], cache=False
    )
    assert matches[0].path == target and abs(matches[0].score - 1) < 1e-5


def test_talk_writes_mp4(pipeline, voices, tmp_path):
    out = tmp_path / "t.mp4"
    n = pipeline.talk(voices["low"], out, fps=25)
    assert out.stat().st_size > 1000 and n == math.ceil(sf.info(voices["low"]).duration * 25)
    assert not list(tmp_path.glob("*.part*"))


def test_the_voice_is_heard_only_where_there_is_speech(pipeline):
    """Identity windows over music after the speech are left out: the voice's f_id^a is that of its speech."""
    from s2tf_cli.pipeline import identity_window_starts, speech_window_starts

    a = pipeline.cfg.audio  # tiny preset: 1 s identity windows, 100 frames a second
    speech = speechlike(3.0, seed=2)
    wave = np.concatenate([speech, 0.3 * music(4.0)])
    frames = len(wave) // a.hop_length
    starts = speech_window_starts(pipeline._speech(wave), frames, a)
    every = identity_window_starts(frames, a)
    assert starts and set(starts) < set(every)
    assert max(starts) * a.hop_length < 3.0 * 16000 and max(every) * a.hop_length > 4.0 * 16000
    with_music = pipeline.voice_identity(wave)
    alone = pipeline.identity_from_mel(pipeline._mel(wave), starts)
    torch.testing.assert_close(with_music, alone)
    assert not torch.allclose(with_music, pipeline.identity_from_mel(pipeline._mel(wave)))
