"""The head-pose reader (models/pose_reader.py), how inference reads pose with it, and its training stage
(training/pose_reader_stage.py)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import with_pose_entries
from safetensors.torch import load_file
from typer.testing import CliRunner

from s2tf_cli.cli import app
from s2tf_cli.config import ModelConfig, preset
from s2tf_cli.models.pose_reader import PoseReader
from s2tf_cli.models.s2tf import S2TFModel
from s2tf_cli.training.config import TrainConfig
from s2tf_cli.training.pose_reader_stage import reader_views

POSE = {"center": [0.0, 0.5, 0.0], "scale": [0.2, 0.1, 0.05]}


@pytest.fixture(scope="module")
def posed_weights(tiny_weights, tmp_path_factory) -> Path:
    """The tiny model, its config saying that f_ir's first entries are yaw, pitch and roll."""
    return with_pose_entries(tiny_weights, tmp_path_factory.mktemp("posed") / "tiny-posed", **POSE)


def _recipe(weights: Path, faceset: Path, steps: int = 6) -> TrainConfig:
    cfg = TrainConfig(model=preset("tiny"), init=str(weights), faceset=str(faceset), pose_reader=[8, 16])
    cfg.steps.pose_reader, cfg.steps.visual, cfg.steps.sync, cfg.steps.finetune = steps, 0, 0, 0
    cfg.batch_size, cfg.encoder_lr = 8, 2e-3
    cfg.log_every, cfg.sample_every, cfg.checkpoint_every = 1, 3, 3
    return cfg


def test_reader_reads_a_crop_into_pose_entries_and_refuses_widths_that_do_not_fit():
    reader = PoseReader([8, 16], 32)
    assert reader(torch.zeros(2, 3, 32, 32)).shape == (2, 3)
    with pytest.raises(ValueError, match="multiples of 8"):
        PoseReader([6, 16], 32)
    with pytest.raises(ValueError, match="6 halvings do not fit image_size 32"):
        PoseReader([8] * 6, 32)


def test_model_takes_the_pose_entries_from_the_reader_and_the_rest_from_e_ir():
    cfg = dataclasses.replace(preset("tiny"), pose_reader=[8, 16], pose_center=POSE["center"], pose_scale=POSE["scale"])
    torch.manual_seed(0)
    model = S2TFModel(cfg).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        f_ir, own = model.irrelevant(x), model.visual_irrelevant(x)
        torch.testing.assert_close(f_ir[:, :3], model.pose_reader(x))
    torch.testing.assert_close(f_ir[:, 3:], own[:, 3:])
    assert not torch.allclose(f_ir[:, :3], own[:, :3])
    plain = S2TFModel(dataclasses.replace(cfg, pose_reader=[])).eval()
    assert plain.pose_reader is None and not any(k.startswith("pose_reader.") for k in plain.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(plain.irrelevant(x), plain.visual_irrelevant(x))
    with pytest.raises(ValueError, match="needs pose entries"):
        S2TFModel(dataclasses.replace(cfg, pose_center=[], pose_scale=[]))
    # config.json round trip; a folder written before the key existed reads as "no reader"
    again = ModelConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert again.pose_reader == [8, 16]
    older = cfg.to_dict()
    del older["pose_reader"]
    assert ModelConfig.from_dict(older).pose_reader == []


def test_reader_views_reframe_and_mirror_the_crop_with_its_labels():
    image = np.zeros((40, 40, 3), np.uint8)
    image[:, :20] = 200  # bright on the left
    pose = np.array([[0.5, 0.2, -0.1]], np.float32)
    seen = set()
    for seed in range(12):
        views, labels = reader_views(image[None], pose, np.random.default_rng(seed), 32)
        assert views.shape == (1, 3, 32, 32) and views.dtype == torch.float32
        assert float(views.min()) >= -1 and float(views.max()) <= 1
        mirrored = float(views[0, :, :, :16].mean()) < float(views[0, :, :, 16:].mean())
        want = pose[0] * (np.array([-1, 1, -1]) if mirrored else 1)
        np.testing.assert_allclose(labels[0].numpy(), want)
        seen.add(mirrored)
    assert seen == {True, False}


def test_pose_reader_stage_trains_resumes_exports_and_reads_references(posed_weights, posed_faceset, tmp_path):
    from s2tf_cli.images import resize, to_tensor
    from s2tf_cli.pipeline import S2TF
    from s2tf_cli.training.export import export
    from s2tf_cli.training.trainer import train

    whole = train(_recipe(posed_weights, posed_faceset), tmp_path / "whole")
    assert summary_ok(whole) and whole["steps"] == 6 and whole["labelled_photos"] > 0
    rows = (tmp_path / "whole" / "metrics-pose_reader.csv").read_text().splitlines()
    assert len(rows) == 7 and rows[0].startswith("step,stage,phase,seconds,loss,lr,val_photos,val_yaw_corr,")
    yaw = rows[0].split(",").index("val_yaw_corr")
    assert [bool(r.split(",")[yaw]) for r in rows[1:]] == [False, False, True, False, False, True]  # sample_every 3
    # stopped after 3 steps and resumed: the same reader as the run that never stopped
    assert train(_recipe(posed_weights, posed_faceset), tmp_path / "parts", max_steps=3)["steps"] == 3
    train(_recipe(posed_weights, posed_faceset), tmp_path / "parts")
    a = load_file(str(tmp_path / "whole" / "checkpoints" / "ckpt-0000006" / "module.safetensors"))
    b = load_file(str(tmp_path / "parts" / "checkpoints" / "ckpt-0000006" / "module.safetensors"))
    assert any(k.startswith("model.pose_reader.") for k in a)
    for k in a:
        torch.testing.assert_close(a[k], b[k])
    # the export carries the reader; every other part is the weights it continued
    folder = export(tmp_path / "whole", tmp_path / "exported")
    cfg = json.loads((folder / "config.json").read_text())
    assert cfg["pose_reader"] == [8, 16] and cfg["pose_scale"] == POSE["scale"] and len(cfg["pose_render"]) == 3
    # a later stage continuing these weights keeps the reader (its recipe's model does not state one)
    from s2tf_cli.training.trainer import inherit_pose

    later = TrainConfig(model=preset("tiny"), init=str(folder))
    inherit_pose(later)
    assert later.model.pose_reader == [8, 16] and later.model.pose_scale == POSE["scale"]
    before = load_file(str(posed_weights / "model.safetensors"))
    after = load_file(str(folder / "model.safetensors"))
    assert set(after) - set(before) == {k for k in after if k.startswith("pose_reader.")}
    for k in before:
        torch.testing.assert_close(after[k], before[k])
    loaded = S2TF.from_pretrained(folder, device="cpu")
    image = (np.random.default_rng(0).random((48, 48, 3)) * 255).astype(np.uint8)
    f_ir = loaded.pose_feature(image, aligned=True)
    with torch.no_grad():
        want = loaded.model.pose_reader(to_tensor(resize(image, 32))[None])[0]
    torch.testing.assert_close(f_ir[:3], want)
    for weights, says in ((folder, ["its", "pose", "reader"]), (posed_weights, ["E_ir^v"])):
        result = CliRunner().invoke(app, ["info", "-w", str(weights)])
        assert result.exit_code == 0
        assert any(line.split()[3:] == says for line in result.output.splitlines() if line.startswith("pose read by"))


def summary_ok(summary: dict) -> bool:
    return {"val_yaw_corr", "val_yaw_corr_encoder"} <= set(summary) and np.isfinite(summary["val_yaw_corr"])


def test_pose_reader_stage_refuses_weights_without_pose_entries_and_a_missing_face_set(
    tiny_weights, posed_faceset, tmp_path
):
    from s2tf_cli.training.trainer import train

    with pytest.raises(ValueError, match="carry no pose entries"):
        train(_recipe(tiny_weights, posed_faceset), tmp_path / "run")
    recipe = tmp_path / "reader.json"
    recipe.write_text(json.dumps({"model": {"preset": "tiny"}, "steps": {"pose_reader": 2, "visual": 0, "sync": 0,
                                                                        "finetune": 0}}))  # fmt: skip
    result = CliRunner().invoke(app, ["train", str(recipe), "--init", str(tiny_weights), "--faceset",
                                      str(tmp_path / "nowhere"), "--out", str(tmp_path / "out"), "--cpu"])  # fmt: skip
    assert result.exit_code != 0 and "not a face set" in result.output
    assert not (tmp_path / "out").exists()
