"""Head motion from the voice (motion.py) and the figures that measure a talking head's motion
(evaluation/motion.py)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import speechlike, with_pose_entries
from typer.testing import CliRunner

from s2tf_cli.cli import app
from s2tf_cli.evaluation.motion import BLINK_SHARE, blinks, eye_aspect_ratio, jitter, motion_figures, speed
from s2tf_cli.motion import HeadMotion, MotionConfig

FPS = 25.0
runner = CliRunner()


def _energy(seconds: float, talk: list[tuple[float, float]], seed: int = 0) -> np.ndarray:
    """Log-mel-like frame energy: -11 (silence) except in the `talk` spans, where syllables at ~4 Hz rise
    to about -1 and dip between them."""
    t = np.arange(int(seconds * FPS)) / FPS
    rng = np.random.default_rng(seed)
    e = np.full(len(t), -11.0) + 0.1 * rng.standard_normal(len(t))
    for a, b in talk:
        span = (t >= a) & (t < b)
        e[span] = -6 + 5 * np.abs(np.sin(np.pi * 4 * (t[span] - a))) + 0.2 * rng.standard_normal(span.sum())
    return e


def test_head_motion_is_seeded_smooth_bounded_and_livelier_in_speech():
    energy = _energy(20, [(0, 10)])
    a = HeadMotion(FPS, seed=0).step(energy)
    assert a.shape == (len(energy), 3)
    np.testing.assert_array_equal(a, HeadMotion(FPS, seed=0).step(energy))  # same seed, same motion
    assert not np.allclose(a, HeadMotion(FPS, seed=1).step(energy))
    chunked = HeadMotion(FPS, seed=0)  # causal: fed in pieces, it moves exactly as fed whole
    np.testing.assert_allclose(np.concatenate([chunked.step(energy[:37]), chunked.step(energy[37:])]), a)
    limit = np.asarray(MotionConfig().limit)
    assert (np.abs(a) <= limit + 0.05).all()
    runs = [HeadMotion(FPS, seed=s).step(energy) for s in range(10)]
    for k in range(2):  # yaw and pitch move at least twice as fast while speaking as in the pause after
        speaking = np.mean([speed(r[: int(10 * FPS), k], FPS) for r in runs])
        quiet = np.mean([speed(r[int(12 * FPS) :, k], FPS) for r in runs])
        assert speaking > 2 * quiet
    for k in range(3):  # smooth: a frame strays from its neighbours' mean by a small share of its per-frame change
        assert jitter(a[:, k]) < 0.35 * speed(a[:, k], FPS) / FPS  # white noise: ~4.4


def test_head_motion_nods_on_stressed_syllables():
    """Averaged over seeds (the drift cancels), the head dips (pitch up) just after each speech onset."""
    energy = _energy(12, [(1, 1.6), (3, 3.6), (5, 5.6), (7, 7.6), (9, 9.6)])
    pitch = np.mean([HeadMotion(FPS, seed=s).step(energy)[:, 1] for s in range(40)], axis=0)
    onsets = [int(t * FPS) for t in (3, 5, 7, 9)]
    after = np.mean([pitch[o + 2 : o + 8].mean() for o in onsets])
    before = np.mean([pitch[o - 8 : o - 1].mean() for o in onsets])
    assert after > before + 0.01


def test_motion_figures_read_known_series():
    ramp = np.linspace(0, 1, 51)  # 1 unit over 2 s
    assert speed(ramp, FPS) == pytest.approx(0.5)
    assert jitter(ramp) == pytest.approx(0.0, abs=1e-12)
    assert jitter(np.array([0.0, 1.0] * 10)) == pytest.approx(1.0)
    holed = ramp.copy()
    holed[3::7] = np.nan  # frames without a face: filled from their neighbours, no jump, no NaN
    assert speed(holed, FPS) == pytest.approx(0.5) and jitter(holed) == pytest.approx(0.0, abs=1e-12)
    ear = np.ones(25 * 60)
    for start in range(100, 1400, 150):  # 9 blinks of 5 frames (200 ms) in a minute
        ear[start : start + 5] = 0.5
    rate, length, count = blinks(ear, FPS)
    assert (rate, count) == (pytest.approx(9.0), 9) and length == pytest.approx(0.2)
    assert blinks(np.full(100, BLINK_SHARE + 0.01), FPS)[2] == 0


def _face_points(eye_open: float, nose_x: float) -> np.ndarray:
    """68 dlib-like points: eyes 36-41 and 42-47 (6 points each, 20 px wide), nose tip 30."""
    p = np.zeros((68, 2))
    for start, cx in ((36, 80.0), (42, 120.0)):
        p[start : start + 6] = [[cx - 10, 100], [cx - 4, 100 - eye_open], [cx + 4, 100 - eye_open], [cx + 10, 100],
                                [cx + 4, 100 + eye_open], [cx - 4, 100 + eye_open]]  # fmt: skip
    p[30] = [100 + nose_x, 130]
    return p


def test_eye_aspect_ratio_and_clip_figures_from_landmarks():
    assert eye_aspect_ratio(_face_points(3.0, 0)) == pytest.approx(6 / 20)
    yaw = 0.1 * np.sin(np.arange(100) / 10)
    points = [_face_points(1.0 if 40 <= i < 44 else 3.0, 40 * y) for i, y in enumerate(yaw)]
    points[10] = None  # a frame without a face
    fig = motion_figures(points, FPS)
    assert fig["frames"] == 100 and fig["found"] == 99 and fig["blinks"] == 1
    assert fig["blink s"] == pytest.approx(4 / FPS)
    assert fig["yaw spread"] == pytest.approx(np.std(np.delete(yaw, 10)), rel=1e-3)
    assert fig["pitch spread"] == pytest.approx(0.0, abs=1e-9)


def test_clip_identity_catches_a_face_that_changes_and_comes_back():
    from s2tf_cli.evaluation.motion import IDENTITY_EVERY, clip_motion

    class Brightness:  # a judge whose embedding is the frame's mean brightness, as an angle
        def embed_many(self, images):
            return np.array([[np.cos(im.mean() / 255), np.sin(im.mean() / 255)] for im in images])

    frames = np.zeros((31, 8, 8, 3), np.uint8)
    frames[2 * IDENTITY_EVERY] = 200  # someone else for a moment
    out = clip_motion(frames, FPS, lambda image: None, Brightness())
    assert out["identity first-last"] == pytest.approx(1.0)
    assert out["identity least"] == pytest.approx(np.cos(200 / 255))


@pytest.fixture(scope="module")
def posed_weights(tiny_weights, tmp_path_factory) -> Path:
    """The tiny model, its config saying that f_ir's first entries are yaw, pitch and roll."""
    return with_pose_entries(tiny_weights, tmp_path_factory.mktemp("posed") / "tiny-posed", [0.0, 0.55, 0.0],
                             [0.17, 0.11, 0.05])  # fmt: skip


def test_talk_moves_the_head_only_where_the_weights_carry_pose(posed_weights, pipeline, tmp_path):
    from s2tf_cli.pipeline import S2TF

    wav = tmp_path / "v.wav"
    sf.write(wav, speechlike(3.0, seed=3), 16000)
    posed = S2TF.from_pretrained(posed_weights, device="cpu")
    still = np.stack(list(posed.talk_frames(wav, motion="none")[1]))
    moving = np.stack(list(posed.talk_frames(wav)[1]))  # natural is the default
    assert still.shape == moving.shape
    assert not np.array_equal(still, moving)
    np.testing.assert_array_equal(moving, np.stack(list(posed.talk_frames(wav)[1])))  # deterministic
    assert not np.array_equal(moving, np.stack(list(posed.talk_frames(wav, seed=4)[1])))
    # weights without pose entries: natural motion cannot turn the head; only the eyes (blinks) differ
    plain = np.stack(list(pipeline.talk_frames(wav)[1]))
    still_plain = np.stack(list(pipeline.talk_frames(wav, motion="none")[1]))
    changed = np.argwhere((plain != still_plain).any(axis=(0, 3)))  # (y, x) of pixels that ever differ
    size = plain.shape[1]
    assert len(changed) and (changed[:, 0] < 0.55 * size).all() and (changed[:, 0] > 0.2 * size).all()
    # the head offsets in f_ir: divided by the scale into the first three entries, nothing elsewhere
    head = posed.head_motion(FPS, 0)
    windows = posed.content_windows(posed._mel(sf.read(wav, dtype="float32")[0]), FPS, 0, 40)
    off = head(windows)
    assert off.shape == (40, posed.cfg.ir_dim) and bool((off[:, 3:] == 0).all()) and off[:, :3].abs().max() > 0
    # where the weights say G draws only part of an offset (pose_render), the motion asks for that much more
    posed.cfg.pose_render = [0.5, 1.0, 0.25]
    more = posed.head_motion(FPS, 0)(windows)
    torch.testing.assert_close(more[:, :3], off[:, :3] / torch.tensor([0.5, 1.0, 0.25]))
    posed.cfg.pose_render = []
    with pytest.raises(Exception, match="--motion must be one of"):
        posed.talk_frames(wav, motion="wild")


def test_live_talker_moves_the_head_as_talk_does(posed_weights):
    from s2tf_cli.live import LiveTalker
    from s2tf_cli.pipeline import S2TF

    posed = S2TF.from_pretrained(posed_weights, device="cpu")
    wave = speechlike(2.0, seed=5)
    frames = {}
    for motion in ("natural", "none"):
        talker = LiveTalker(posed, motion=motion)
        frames[motion] = np.stack([f for k in range(0, len(wave), 640) for f in talker.push(wave[k : k + 640])]
                                  + talker.close())  # fmt: skip
    assert frames["natural"].shape == frames["none"].shape
    assert not np.array_equal(frames["natural"], frames["none"])
    with pytest.raises(Exception, match="--motion must be one of"):
        LiveTalker(posed, motion="wild")


def test_cli_talk_motion_option(posed_weights, tmp_path):
    wav = tmp_path / "v.wav"
    sf.write(wav, speechlike(1.0, seed=6), 16000)
    out = tmp_path / "o.mp4"
    result = runner.invoke(app, ["talk", str(wav), "-o", str(out), "-w", str(posed_weights), "--motion", "wild"])
    assert result.exit_code != 0 and "--motion must be one of natural, none" in result.output
    assert not out.exists()
    result = runner.invoke(app, ["talk", str(wav), "-o", str(out), "-w", str(posed_weights), "--motion", "none"])
    assert result.exit_code == 0, result.output
    assert out.stat().st_size > 0


def test_eye_schedule_blinks_at_a_natural_rate_and_glances_and_is_seeded():
    from s2tf_cli.eyes import EyeConfig, EyeMotion

    n = int(10 * 60 * FPS)  # ten minutes
    closure, gaze = EyeMotion(FPS, seed=0).step(n)
    again = EyeMotion(FPS, seed=0).step(n)
    np.testing.assert_array_equal(closure, again[0])
    np.testing.assert_array_equal(gaze, again[1])
    assert not np.array_equal(closure, EyeMotion(FPS, seed=1).step(n)[0])
    chunked = EyeMotion(FPS, seed=0)
    first, rest = chunked.step(101), chunked.step(n - 101)
    np.testing.assert_array_equal(np.concatenate([first[0], rest[0]]), closure)
    np.testing.assert_array_equal(np.concatenate([first[1], rest[1]]), gaze)
    rate, length, count = blinks(1 - closure, FPS)  # closure as an eye aspect ratio's dip
    assert 10 <= rate <= 20 and 0.1 <= length <= 0.4
    assert closure.min() == 0 and closure.max() == 1
    jumps = np.count_nonzero(np.diff(gaze))  # saccades: the gaze holds, then jumps
    lo, hi = EyeConfig().glance
    assert 0.2 * n / (1.8 * FPS) < jumps < n / (1.8 * FPS)  # some saccades land where the gaze already was
    assert 0.3 < np.mean(gaze == 0) < 0.7
    off = np.abs(gaze[gaze != 0])
    assert off.min() >= lo and off.max() <= hi and (gaze > 0).any() and (gaze < 0).any()


def test_close_eyes_draws_lids_over_the_eyes_only():
    from s2tf_cli.eyes import EYES, close_eyes

    size = 64
    frame = np.full((size, size, 3), 200, np.uint8)  # skin
    for x, y in EYES:  # dark eyes where the face set's are
        cx, cy = round(x * size), round(y * size)
        frame[cy - 1 : cy + 2, cx - 3 : cx + 4] = 30
    assert close_eyes(frame, 0.0) is frame
    shut = close_eyes(frame, 1.0)
    changed = np.argwhere((shut != frame).any(axis=2))
    assert len(changed) and (changed[:, 0] >= 0.25 * size).all() and (changed[:, 0] <= 0.5 * size).all()
    for x, y in EYES:
        cx, cy = round(x * size), round(y * size)
        assert shut[cy, cx].mean() > 120 > frame[cy, cx].mean()  # the dark eye is covered by skin-coloured lid
    half = close_eyes(frame, 0.5)
    assert frame[:, :, 0].sum() < half[:, :, 0].sum() < shut[:, :, 0].sum() + 3 * 255  # lids come down by degrees


def test_a_lid_under_a_dark_brow_takes_the_cheeks_skin_not_the_brows_colour():
    from s2tf_cli.eyes import EYES, close_eyes

    size = 64
    frame = np.full((size, size, 3), 190, np.uint8)  # skin
    for x, y in EYES:
        cx, cy = round(x * size), round(y * size)
        frame[cy - 1 : cy + 2, cx - 3 : cx + 4] = 30  # the eye
        frame[cy - 7 : cy - 2, cx - 6 : cx + 7] = 10  # a thick black brow (or a glasses' rim, or hair) above it
    shut = close_eyes(frame, 1.0)
    for x, y in EYES:
        cx, cy = round(x * size), round(y * size)
        assert shut[cy, cx].mean() > 140  # skin-coloured, not the brow's black
    dark_cheek = frame.copy()
    dark_cheek[round(0.45 * size) :] = 60  # a shadow below the eyes: the band above is the brighter one
    dark_cheek[: round(0.2 * size)] = 190
    for x, y in EYES:
        cx, cy = round(x * size), round(y * size)
        dark_cheek[cy - 7 : cy - 2, cx - 6 : cx + 7] = 190
    assert close_eyes(dark_cheek, 1.0)[round(EYES[0][1] * size), round(EYES[0][0] * size)].mean() > 140


def test_info_says_whether_the_head_can_move(posed_weights, tiny_weights):
    result = runner.invoke(app, ["info", "-w", str(posed_weights)])
    assert result.exit_code == 0
    assert any(line.split()[:3] == ["head", "motion", "yes"] for line in result.output.splitlines())
    result = runner.invoke(app, ["info", "-w", str(tiny_weights)])
    assert result.exit_code == 0 and "no (eyes only: blinks, glances)" in result.output


def test_lids_go_where_g_puts_the_eyes_not_to_the_darkest_spot_nearby():
    """A darker brow (or shadow, or hair) beside the eye does not pull the lid off it."""
    from s2tf_cli.eyes import EYES, _eyes

    size = 64
    frame = np.full((size, size, 3), 200, np.uint8)
    for x, y in EYES:
        cx, cy = round(x * size), round(y * size)
        frame[cy - 1 : cy + 2, cx - 3 : cx + 4] = 60  # the eye
        frame[cy - 3 : cy - 1, cx - 4 : cx + 5] = 0  # a black brow just above it
    assert _eyes(frame) == [(x * size, y * size) for x, y in EYES]


def test_shift_gaze_moves_the_eyes_content_inside_the_eyes_only():
    from s2tf_cli.eyes import EYE_WIDTH, EYES, shift_gaze

    size = 64
    frame = np.full((size, size, 3), 200, np.uint8)
    for x, y in EYES:  # a white eye with a dark iris in its middle
        cx, cy = round(x * size), round(y * size)
        frame[cy - 1 : cy + 2, cx - 3 : cx + 4] = 250
        frame[cy - 1 : cy + 2, cx - 1 : cx + 2] = 20
    assert shift_gaze(frame, 0.0) is frame
    right = shift_gaze(frame, 0.4)
    changed = np.argwhere((right != frame).any(axis=2))
    assert len(changed) and (np.abs(changed[:, 0] - EYES[0][1] * size) <= 3).all()  # the eye band only
    for x, y in EYES:
        cx, cy = round(x * size), round(y * size)
        row = right[cy, :, 0].astype(float)
        window = slice(cx - 4, cx + 5)
        iris = np.argmin(row[window]) + cx - 4
        assert iris > cx and iris - cx <= round(0.4 * EYE_WIDTH * size / 2) + 1  # moved right, by about the asked


def test_with_a_mouth_entry_talk_and_face_set_it_from_the_voice_over_the_reference(posed_weights, tmp_path,
                                                                                     pose_image):  # fmt: skip
    from s2tf_cli.pipeline import S2TF

    out = tmp_path / "mouthed"
    shutil.copytree(posed_weights, out)
    cfg = json.loads((out / "config.json").read_text())
    cfg["mouth_center"], cfg["mouth_scale"] = 0.1, 0.05
    (out / "config.json").write_text(json.dumps(cfg))
    s = S2TF.from_pretrained(out, device="cpu")
    assert s.model.mouth_entry == 3
    asked = []
    generate = s.model.generate
    s.model.generate = lambda f_id, f_ir, noise=None: (asked.append(f_ir.clone()), generate(f_id, f_ir, noise))[1]
    wav = tmp_path / "v.wav"
    sf.write(wav, speechlike(2.0, seed=3), 16000)
    ref = s.pose_feature(pose_image)
    n, frames = s.talk_frames(wav, pose=pose_image, motion="none")
    list(frames)
    f_ir = torch.cat(asked)
    assert len(f_ir) == n
    windows = s.content_windows(s._mel(sf.read(wav, dtype="float32")[0]), 25.0, 0, n)
    with torch.inference_mode(), s._per_frame():  # the precision talk runs in
        voice = s.model.content(windows)
    f_ir, voice = f_ir.float(), voice.float()
    torch.testing.assert_close(f_ir[:, 3], voice[:, 3])  # the voice's mouth, not the reference's plus it
    torch.testing.assert_close(f_ir[:, :3], ref[:3].expand(n, -1), atol=0.02, rtol=0.01)
    torch.testing.assert_close(f_ir[:, 4:], ref[4:].expand(n, -1), atol=0.02, rtol=0.01)
    asked.clear()
    s.face(wav, pose=pose_image)
    torch.testing.assert_close(asked[0][0, 3], s.silence_content()[3])  # `face`: the mouth of silence
    torch.testing.assert_close(asked[0][0, 4:], ref[4:])
