"""Pose labels for a face set and the GAN stage that teaches f_ir^v pose with them."""

from __future__ import annotations

import csv
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import faces_config, label_from_pixels
from typer.testing import CliRunner

from s2tf_cli.cli import app
from s2tf_cli.data.pose_labels import (
    LEFT_EYE,
    NOSE_TIP,
    RIGHT_EYE,
    label_faceset,
    mouth_from_mesh,
    pose_from_mesh,
    read_mouth,
    read_pose,
)
from s2tf_cli.training.face_batches import FaceSet

runner = CliRunner()


def _mesh(yaw_px: float, drop_px: float, roll: float) -> np.ndarray:
    """468 FaceMesh-like points: eyes 40 px apart, the nose tip `yaw_px` right of and `drop_px` below their
    midpoint, the whole face turned in the image plane by `roll` radians about that midpoint."""
    pts = np.zeros((468, 2))
    pts[list(RIGHT_EYE)] = [[-25, 0], [-15, 0]]
    pts[list(LEFT_EYE)] = [[25, 0], [15, 0]]
    pts[NOSE_TIP] = [yaw_px, drop_px]
    c, s = np.cos(roll), np.sin(roll)
    return pts @ np.array([[c, s], [-s, c]]) + [100, 120]


def test_pose_from_mesh_reads_the_judges_measures_in_the_faces_own_frame():
    yaw, pitch, roll = pose_from_mesh(_mesh(8, 22, 0.0))
    assert (yaw, pitch, roll) == pytest.approx((8 / 40, 22 / 40, 0.0))
    yaw, pitch, roll = pose_from_mesh(_mesh(8, 22, 0.3))  # a tilted head: yaw and pitch unchanged
    assert (yaw, pitch, roll) == pytest.approx((0.2, 0.55, 0.3))
    mirrored = _mesh(8, 22, 0.3) * [-1, 1]  # the mirror image: FaceMesh swaps the eyes too
    mirrored[list(RIGHT_EYE) + list(LEFT_EYE)] = mirrored[list(LEFT_EYE) + list(RIGHT_EYE)]
    assert pose_from_mesh(mirrored) == pytest.approx((-0.2, 0.55, -0.3))


def test_mouth_from_mesh_is_the_lip_gap_over_the_mouth_width_at_any_roll():
    from s2tf_cli.data.pose_labels import LOWER_LIP, MOUTH_CORNERS, UPPER_LIP

    pts = np.zeros((468, 2))
    pts[list(MOUTH_CORNERS)] = [[-20, 40], [20, 40]]
    pts[UPPER_LIP], pts[LOWER_LIP] = [0, 36], [0, 46]
    assert mouth_from_mesh(pts) == pytest.approx(10 / 40)
    c, s = np.cos(0.4), np.sin(0.4)
    assert mouth_from_mesh(pts @ np.array([[c, s], [-s, c]]) + 7) == pytest.approx(10 / 40)
    pts[UPPER_LIP] = pts[LOWER_LIP]
    assert mouth_from_mesh(pts) == 0.0


def _posed_faceset(faceset: Path, tmp_path: Path) -> tuple[Path, np.ndarray]:
    out = tmp_path / "faces"
    shutil.copytree(faceset, out)
    truth, summary, ticks = label_from_pixels(out)
    n = len(truth)
    assert summary == {"photos": n, "posed": n - len(range(4, n, 5))} and ticks == n
    return out, truth


def test_label_faceset_writes_a_row_per_photo_and_reads_back(faceset, tmp_path):
    posed, truth = _posed_faceset(faceset, tmp_path)
    assert not (posed / "pose.csv.part").exists()
    with open(posed / "pose.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["index"]) for r in rows] == list(range(len(truth)))
    got = read_pose(posed, len(truth))
    labelled = np.arange(len(truth)) % 5 != 4
    np.testing.assert_allclose(got[labelled], truth[labelled, :3], atol=1e-5)
    assert np.isnan(got[~labelled]).all()
    mouth = read_mouth(posed, len(truth))
    np.testing.assert_allclose(mouth[labelled], truth[labelled, 3], atol=1e-5)
    assert np.isnan(mouth[~labelled]).all()
    assert np.isnan(read_pose(faceset, 3)).all() and np.isnan(read_mouth(faceset, 3)).all()  # no labels at all
    # a pose.csv written before the mouth column (or by a pose-only estimator): no mouth labels
    label_faceset(posed, lambda im: (0.1, 0.5, 0.0))
    assert np.isnan(read_mouth(posed, len(truth))).all() and np.isfinite(read_pose(posed, len(truth))).all()
    with pytest.raises(FileNotFoundError, match="not a face set"):
        label_faceset(tmp_path, lambda im: None)


def test_face_batches_carry_standardised_poses_mirrored_with_their_photos(faceset, tmp_path):
    posed, truth = _posed_faceset(faceset, tmp_path)
    faces = FaceSet(posed, 32)
    labelled = np.isfinite(faces.pose[:, 0])
    assert faces.pose_center[0] == 0 and faces.pose_center[2] == 0
    assert faces.pose_center[1] == pytest.approx(np.median(faces.pose[labelled, 1]))
    assert (faces.pose_scale > 0).all()
    # each photo: its row number in green, a bright left half in red, so a drawn target says which photo it is
    # and whether it was mirrored
    faces.images = np.zeros_like(faces.images)
    faces.images[..., 1] = np.arange(len(faces))[:, None, None]
    faces.images[:, :, :16, 0] = 255
    flips, seen = 0, 0
    for seed in range(6):
        batch = faces.draw(8, np.random.default_rng(seed))
        for frame, got in zip(batch["frame"], batch["pose"].numpy()):
            i = int(round((float(frame[1].mean()) + 1) * 127.5))
            want = (faces.pose[i] - faces.pose_center) / faces.pose_scale
            if not np.isfinite(want[0]):
                assert np.isnan(got).all()
                continue
            if frame[0, :, :16].mean() < 0:  # the bright half is on the right: mirrored
                want = want * [-1, 1, -1]
                flips += 1
            seen += 1
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert 0 < flips < seen
    # the mouth: standardised by the set's median and spread, the same mirrored or not
    said = np.isfinite(faces.mouth)
    assert faces.mouth_center == pytest.approx(np.median(faces.mouth[said])) and faces.mouth_scale > 0
    batch = faces.draw(8, np.random.default_rng(0))
    for frame, got in zip(batch["frame"], batch["mouth"].numpy()):
        i = int(round((float(frame[1].mean()) + 1) * 127.5))
        want = (faces.mouth[i] - faces.mouth_center) / faces.mouth_scale
        assert (np.isnan(got) and np.isnan(want)) or got == pytest.approx(want, rel=1e-5, abs=1e-6)


def test_a_pose_run_teaches_f_ir_pose_and_exports_where_it_is(faceset, ge2e_file, tmp_path):
    from s2tf_cli.hub import load_model, resolve
    from s2tf_cli.training.export import export
    from s2tf_cli.training.trainer import train

    posed, _ = _posed_faceset(faceset, tmp_path)
    cfg = faces_config(posed, ge2e_file)
    cfg.faces.pose, cfg.faces.pose_cycle, cfg.faces.mouth = 1.0, 0.5, 1.0
    train(cfg, tmp_path / "run", cpu=True)
    with open(tmp_path / "run" / "metrics-faces.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert all(np.isfinite(float(r[k])) for r in rows for k in ("pose_err", "pose_cycle", "mouth_err"))
    model = load_model(resolve(str(export(tmp_path / "run", tmp_path / "exp"))))
    faces = FaceSet(posed, 32)
    assert model.cfg.pose_center == pytest.approx(faces.pose_center.tolist(), abs=1e-5)
    assert model.cfg.pose_scale == pytest.approx(faces.pose_scale.tolist(), abs=1e-5)
    assert model.cfg.mouth_center == pytest.approx(faces.mouth_center, abs=1e-5)
    assert model.cfg.mouth_scale == pytest.approx(faces.mouth_scale, abs=1e-5) and model.mouth_entry == 3
    # export measured how far this G turns the head for its pose entries
    from s2tf_cli.training.pose_render import HIGHEST, LOWEST, pose_render_share

    assert len(model.cfg.pose_render) == 3 and all(LOWEST <= v <= HIGHEST for v in model.cfg.pose_render)
    assert model.cfg.pose_render == pose_render_share(model)  # measured on the exported G, deterministically
    # a later stage continuing these weights keeps where pose is
    from s2tf_cli.training.config import TrainConfig
    from s2tf_cli.training.trainer import inherit_pose

    later = TrainConfig(model=faces_config(posed, ge2e_file).model, init=str(tmp_path / "exp"))
    inherit_pose(later)
    assert later.model.pose_scale == model.cfg.pose_scale and later.model.pose_center == model.cfg.pose_center
    assert later.model.mouth_scale == model.cfg.mouth_scale and later.model.mouth_center == model.cfg.mouth_center
    assert later.model.pose_render == model.cfg.pose_render
    # the mouth entry follows the pose entries: a recipe with the one and not the other stops at once
    cfg = faces_config(posed, ge2e_file)
    cfg.faces.mouth = 1.0
    with pytest.raises(ValueError, match="faces.mouth needs faces.pose"):
        train(cfg, tmp_path / "mouth-only", cpu=True)
    # without labels a pose recipe stops at once, naming the face set
    cfg = faces_config(faceset, ge2e_file)
    cfg.faces.pose = 1.0
    with pytest.raises(ValueError, match="no pose labels"):
        train(cfg, tmp_path / "unposed", cpu=True)
    assert not (tmp_path / "unposed" / "checkpoints").exists()


def test_the_pose_term_teaches_e_ir_the_labels(faceset, tmp_path):
    """The GAN step's pose term alone (every other weight 0) brings E_ir^v's first entries to the labels."""
    from s2tf_cli.training.face_prior import POSE_DIMS, FacePriorModule

    posed, _ = _posed_faceset(faceset, tmp_path)
    faces = FaceSet(posed, 32)
    cfg = faces_config(posed, tmp_path / "none")
    w = cfg.faces
    w.adv = w.rec_low = w.rec_mouth = w.identity = w.arcface = w.attributes = w.mix_share = w.pose_cycle = 0.0
    w.pose = 1.0
    torch.manual_seed(0)
    module = FacePriorModule(cfg)
    module.set_training()
    batch = faces.draw(16, np.random.default_rng(0))
    opt = torch.optim.Adam(module.model.visual_irrelevant.parameters(), lr=5e-3)
    errors = []
    for _ in range(60):
        loss, metrics, _ = module(batch, "g", 0)
        errors.append(float(metrics["pose_err"]))
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert errors[-1] < 0.6 * errors[0], errors[::10]
    with torch.no_grad():
        module.eval()
        f_ir = module.model.visual_irrelevant(batch["frame"])[:, :POSE_DIMS]
    ok = torch.isfinite(batch["pose"][:, 0])
    yaw_corr = np.corrcoef(f_ir[ok, 0].numpy(), batch["pose"][ok, 0].numpy())[0, 1]
    assert yaw_corr > 0.9, yaw_corr


def test_cli_data_pose_refuses_a_non_faceset_and_a_missing_mediapipe(tmp_path, faceset, monkeypatch):
    result = runner.invoke(app, ["data", "pose", str(tmp_path)])
    assert result.exit_code != 0 and f"{tmp_path}: not a face set" in result.output
    monkeypatch.setitem(sys.modules, "mediapipe", None)  # `import mediapipe` fails as when not installed
    copy = tmp_path / "faces"
    shutil.copytree(faceset, copy)
    result = runner.invoke(app, ["data", "pose", str(copy)])
    assert result.exit_code != 0 and "mediapipe 0.10.14" in result.output
    assert "Traceback" not in result.output and not (copy / "pose.csv").exists()


def test_g_draws_labelled_targets_from_their_labels_and_novel_faces_from_another_photos_pose(faceset, tmp_path):
    from s2tf_cli.training.face_prior import POSE_DIMS, FacePriorModule

    posed, _ = _posed_faceset(faceset, tmp_path)
    faces = FaceSet(posed, 32)
    cfg = faces_config(posed, tmp_path / "none")
    cfg.faces.pose, cfg.faces.pose_cycle, cfg.faces.mix_share, cfg.ir_dropout = 1.0, 0.5, 0.5, 0.0
    module = FacePriorModule(cfg)
    module.set_training()
    asked = []
    generate = module.model.generate
    module.model.generate = lambda f_id, f_ir, noise=None: (asked.append(f_ir.detach()), generate(f_id, f_ir))[1]
    batch = next(
        b
        for seed in range(50)
        if not bool(torch.isfinite((b := faces.draw(8, np.random.default_rng(seed)))["pose"][:, 0]).all())
    )
    loss, metrics, fakes = module(batch, "g", 0)
    assert len(asked) == 2 and len(fakes) == 8 + 4 and np.isfinite(float(metrics["pose_cycle"]))
    ok = torch.isfinite(batch["pose"][:, 0])
    assert ok.any() and not ok.all()
    torch.testing.assert_close(asked[0][ok, :POSE_DIMS], batch["pose"][ok])
    assert torch.isfinite(asked[0][~ok, :POSE_DIMS]).all()  # an unlabelled target: the encoder's reading
    for row in asked[1][:, :POSE_DIMS]:  # each novel face: one of the batch's poses
        assert any(torch.equal(row, r) for r in asked[0][:, :POSE_DIMS])


def test_pose_alone_draws_labelled_targets_from_their_pose_entries_only(faceset, tmp_path):
    from s2tf_cli.training.face_prior import POSE_DIMS, FacePriorModule

    posed, _ = _posed_faceset(faceset, tmp_path)
    faces = FaceSet(posed, 32)
    cfg = faces_config(posed, tmp_path / "none")
    cfg.faces.pose, cfg.faces.pose_cycle, cfg.faces.mix_share, cfg.ir_dropout = 1.0, 0.5, 0.0, 0.0
    batch = next(
        b
        for seed in range(50)
        if not bool(torch.isfinite((b := faces.draw(8, np.random.default_rng(seed)))["pose"][:, 0]).all())
    )
    ok = torch.isfinite(batch["pose"][:, 0])
    for share in (1.0, 0.0):
        cfg.faces.pose_alone = share
        module = FacePriorModule(cfg)
        module.set_training()
        asked: list[torch.Tensor] = []
        module.model.generate = _recording(module.model.generate, asked)
        loss, metrics, _ = module(batch, "g", 0)
        assert torch.isfinite(loss) and np.isfinite(float(metrics["rec_mouth"]))
        torch.testing.assert_close(asked[0][ok, :POSE_DIMS], batch["pose"][ok])
        rest = asked[0][:, POSE_DIMS:]
        assert torch.count_nonzero(rest[~ok]) > 0  # unlabelled targets keep all of f_ir
        assert (torch.count_nonzero(rest[ok]) == 0) == (share == 1.0)


def _recording(generate, asked: list):
    def wrapped(f_id, f_ir, noise=None):
        asked.append(f_ir.detach())
        return generate(f_id, f_ir)

    return wrapped


def test_the_mouth_entry_is_taught_told_and_read_back_beside_the_pose(faceset, tmp_path):
    from s2tf_cli.training.face_prior import POSE_DIMS, FacePriorModule

    posed, _ = _posed_faceset(faceset, tmp_path)
    faces = FaceSet(posed, 32)
    cfg = faces_config(posed, tmp_path / "none")
    cfg.faces.pose, cfg.faces.pose_cycle, cfg.faces.mouth, cfg.faces.pose_alone = 1.0, 0.5, 1.0, 1.0
    cfg.faces.mix_share, cfg.ir_dropout = 0.5, 0.0
    module = FacePriorModule(cfg)
    module.set_training()
    asked: list[torch.Tensor] = []
    module.model.generate = _recording(module.model.generate, asked)
    batch = faces.draw(8, np.random.default_rng(3))
    loss, metrics, _ = module(batch, "g", 0)
    assert torch.isfinite(loss) and float(metrics["mouth_err"]) > 0 and np.isfinite(float(metrics["pose_cycle"]))
    ok = torch.isfinite(batch["pose"][:, 0]) & torch.isfinite(batch["mouth"])
    assert ok.any()
    told = torch.cat([batch["pose"], batch["mouth"][:, None]], dim=1)
    torch.testing.assert_close(asked[0][ok, : POSE_DIMS + 1], told[ok])
    assert torch.count_nonzero(asked[0][ok, POSE_DIMS + 1 :]) == 0  # drawn from pose and mouth alone
    for row in asked[1][:, : POSE_DIMS + 1]:  # each novel face: one photo's pose and mouth together
        assert any(torch.equal(row, r) for r in asked[0][:, : POSE_DIMS + 1])


def test_speech_sets_the_mouth_entry_alone_where_g_has_one():
    from s2tf_cli.config import preset
    from s2tf_cli.models.s2tf import S2TFModel

    cfg = preset("tiny")
    cfg.pose_center, cfg.pose_scale = [0.0, 0.0, 0.0], [1.0, 1.0, 1.0]
    plain = S2TFModel(cfg).eval()
    windows = torch.randn(2, cfg.audio.n_mels, cfg.audio.content_window)
    f_s = plain.content(windows)
    assert plain.mouth_entry is None and torch.count_nonzero(f_s[:, :3]) == 0 and torch.count_nonzero(f_s[:, 3:]) > 0
    base = torch.randn(cfg.ir_dim)
    torch.testing.assert_close(plain.speak(base, f_s), base + f_s)  # the paper's f_ir + f_s^a
    cfg.mouth_center, cfg.mouth_scale = 0.1, 0.05
    model = S2TFModel(cfg).eval()
    f_s = model.content(windows)
    assert model.mouth_entry == 3 and torch.count_nonzero(f_s[:, 3]) == 2
    assert torch.count_nonzero(f_s) == 2  # nothing but the mouth entry
    spoken = model.speak(base, f_s)
    torch.testing.assert_close(spoken[:, 3], f_s[:, 3])  # the reference's own mouth does not add
    torch.testing.assert_close(spoken[:, :3], base[:3].expand(2, -1))
    torch.testing.assert_close(spoken[:, 4:], base[4:].expand(2, -1))


def test_pose_render_share_reads_back_what_g_draws():
    """An E_ir^v that reads the image's mean brightness and a G whose brightness follows the yaw entry
    exactly: share 1 for yaw; entries G ignores read back nothing and get the floor."""
    from s2tf_cli.config import preset
    from s2tf_cli.models.s2tf import S2TFModel
    from s2tf_cli.training.pose_render import LOWEST, pose_render_share

    cfg = preset("tiny")
    cfg.pose_center, cfg.pose_scale = [0.0, 0.0, 0.0], [0.1, 0.2, 0.05]
    model = S2TFModel(cfg)

    class Bright(torch.nn.Module):  # G: a flat image as bright as the yaw entry
        def forward(self, z, noise=None):
            yaw = z[:, cfg.id_dim]
            return yaw[:, None, None, None].expand(-1, 3, cfg.image_size, cfg.image_size).clone()

        def make_noise(self, seed, device="cpu"):
            return []

    class Reader(torch.nn.Module):  # E_ir^v: entry 0 is the mean brightness, the rest zero
        def forward(self, img):
            out = torch.zeros(len(img), cfg.ir_dim)
            out[:, 0] = img.mean(dim=(1, 2, 3))
            return out

    model.generator, model.visual_irrelevant = Bright(), Reader()
    assert pose_render_share(model, identities=4) == [pytest.approx(1.0), LOWEST, LOWEST]
    cfg.pose_scale = []
    assert pose_render_share(model) == []


def test_the_pose_cycle_can_be_read_by_the_pose_reader(faceset, tmp_path):
    from s2tf_cli.training.face_prior import POSE_DIMS, FacePriorModule

    posed, _ = _posed_faceset(faceset, tmp_path)
    faces = FaceSet(posed, 32)
    cfg = faces_config(posed, tmp_path / "none")
    cfg.faces.pose, cfg.faces.pose_cycle, cfg.faces.mouth, cfg.faces.pose_cycle_reader = 1.0, 0.5, 1.0, True
    cfg.model.pose_center, cfg.model.pose_scale, cfg.model.pose_reader = [0.0, 0.5, 0.0], [0.2, 0.1, 0.05], [8] * 5
    module = FacePriorModule(cfg)
    module.set_training()
    image = torch.rand(3, 3, 32, 32, requires_grad=True)
    got = module.pose_of(image, POSE_DIMS + 1)
    reader, e_ir = module.model.pose_reader, module.model.visual_irrelevant
    e_ir.eval()
    with torch.no_grad():
        torch.testing.assert_close(got[:, :3], reader(image))  # the pose entries: the reader's
        torch.testing.assert_close(got[:, 3:], e_ir(image)[:, 3 : POSE_DIMS + 1])  # the mouth entry: E_ir^v's
    got.sum().backward()
    assert image.grad.abs().sum() > 0, "G answers for the reading"
    assert all(p.grad is None for p in reader.parameters()), "the reader is a frozen judge"
    loss, metrics, _ = module(faces.draw(8, np.random.default_rng(3)), "g", 0)
    assert torch.isfinite(loss) and np.isfinite(float(metrics["pose_cycle"]))
    cfg.model.pose_reader = []
    with pytest.raises(ValueError, match="needs a model with a pose reader"):
        FacePriorModule(cfg).pose_of(image)


def test_a_reader_read_pose_cycle_needs_weights_that_carry_a_trained_reader(faceset, ge2e_file, tmp_path):
    from s2tf_cli.training.trainer import train

    posed, _ = _posed_faceset(faceset, tmp_path)
    cfg = faces_config(posed, ge2e_file)
    cfg.faces.pose, cfg.faces.pose_cycle, cfg.faces.pose_cycle_reader, cfg.pose_reader = 1.0, 0.5, True, [8] * 5
    with pytest.raises(ValueError, match="give --init weights that carry one"):
        train(cfg, tmp_path / "run", cpu=True)
    assert not (tmp_path / "run" / "checkpoints").exists() or not any((tmp_path / "run" / "checkpoints").iterdir())
