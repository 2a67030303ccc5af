"""The mouth-teacher stage (training/mouth_teacher_stage.py): E_s^a's mouth entry learns a teacher's drawn
mouths on real voices' training people; nothing else of the weights moves."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TRAIN_PERSON, VAL_PERSON, with_pose_entries
from safetensors.torch import load_file
from typer.testing import CliRunner

from s2tf_cli.cli import app
from s2tf_cli.config import preset
from s2tf_cli.training.config import TrainConfig
from s2tf_cli.training.mouth_teacher_stage import targets, teacher_clips


@pytest.fixture(scope="module")
def mouthed_weights(tiny_weights, tmp_path_factory) -> Path:
    """The tiny model, its config saying that f_ir carries pose entries and, after them, a mouth entry."""
    out = with_pose_entries(
        tiny_weights, tmp_path_factory.mktemp("mouthed") / "tiny-mouth", [0, 0, 0], [0.2, 0.1, 0.05]
    )
    cfg = json.loads((out / "config.json").read_text())
    cfg["mouth_center"], cfg["mouth_scale"] = 0.1, 0.05
    (out / "config.json").write_text(json.dumps(cfg))
    return out


def _recipe(weights: Path, teacher: Path, voices: list[Path], steps: int = 6) -> TrainConfig:
    cfg = TrainConfig(model=preset("tiny"), init=str(weights), teacher=str(teacher), voices=[str(v) for v in voices])
    cfg.steps.mouth_teacher, cfg.steps.visual, cfg.steps.sync, cfg.steps.finetune = steps, 0, 0, 0
    cfg.batch_size, cfg.encoder_lr, cfg.teacher_dev_share = 16, 1e-3, 0.6  # 2 of 4 people
    cfg.log_every, cfg.sample_every, cfg.checkpoint_every = 1, 3, 3
    return cfg


def test_targets_keep_the_teachers_shape_at_the_students_rest_and_spread():
    readings = [np.array([2.0, 2.0, 3.0, 4.0, 2.0] * 4), np.array([-1.0, 0.0, -1.0, 1.0] * 5)]
    goals, scale = targets(readings, own_spread=1.5, rest=-0.2)
    assert scale == pytest.approx(1.5 / np.median([r.std() for r in readings]))
    for r, g in zip(readings, goals):
        assert g.dtype == np.float32 and g.shape == r.shape
        np.testing.assert_allclose(g, (r - np.quantile(r, 0.1)) * scale - 0.2, rtol=1e-6)
        assert np.corrcoef(g, r)[0, 1] == pytest.approx(1.0)
        assert float(np.quantile(g, 0.1)) == pytest.approx(-0.2, abs=1e-6)  # the mouth at rest: the student's


def test_teacher_clips_are_the_training_peoples_at_most_n_each(s2f_tree, libri_tree):
    clips = teacher_clips([str(s2f_tree), str(libri_tree)], per_person=1)
    people = [c.person for c in clips]
    assert f"s2f-{TRAIN_PERSON}" in people and f"s2f-{VAL_PERSON}" not in people
    assert len(people) == len(set(people)) and {"librispeech-0", "librispeech-1"} <= set(people)
    both = teacher_clips([str(s2f_tree)], per_person=2)
    assert sum(c.person == f"s2f-{TRAIN_PERSON}" for c in both) == 2


def test_mouth_teacher_stage_trains_resumes_and_changes_only_e_s(mouthed_weights, tiny_weights, s2f_tree, libri_tree,
                                                                 tmp_path):  # fmt: skip
    from s2tf_cli.training.export import export
    from s2tf_cli.training.trainer import train

    voices = [s2f_tree, libri_tree]
    whole = train(_recipe(mouthed_weights, tiny_weights, voices), tmp_path / "whole")
    assert whole["steps"] == 6 and whole["clips"] + whole["dev_clips"] == 5 and whole["frames"] > 0
    assert np.isfinite(whole["dev_fidelity"]) and np.isfinite(whole["dev_fidelity_before"]) and whole["scale"] > 0
    read = sorted((tmp_path / "whole" / "teacher").glob("*.npz"))
    assert len(read) == 5
    first = np.load(read[0])
    assert first["mel"].shape[0] == 16 and first["reading"].ndim == 1 and np.isfinite(first["reading"]).all()
    # the frames the teacher drew: 25 fps over the clip (3.5 s or 4 s)
    assert len(first["reading"]) in (88, 100)
    rows = (tmp_path / "whole" / "metrics-mouth_teacher.csv").read_text().splitlines()
    assert len(rows) == 7 and rows[0] == "step,stage,phase,seconds,loss,lr,dev_fidelity"
    scored = [r.split(",")[-1] for r in rows[1:]]
    assert [bool(x) for x in scored] == [False, False, True, False, False, True]  # sample_every 3
    assert np.isfinite(float(scored[-1]))
    # stopped after 3 steps and resumed (the teacher's readings kept): the same E_s^a as the run that never stopped
    assert train(_recipe(mouthed_weights, tiny_weights, voices), tmp_path / "parts", max_steps=3)["steps"] == 3
    stamp = [p.stat().st_mtime_ns for p in sorted((tmp_path / "parts" / "teacher").glob("*.npz"))]
    train(_recipe(mouthed_weights, tiny_weights, voices), tmp_path / "parts")
    assert [p.stat().st_mtime_ns for p in sorted((tmp_path / "parts" / "teacher").glob("*.npz"))] == stamp
    a = load_file(str(tmp_path / "whole" / "checkpoints" / "ckpt-0000006" / "module.safetensors"))
    b = load_file(str(tmp_path / "parts" / "checkpoints" / "ckpt-0000006" / "module.safetensors"))
    for k in a:
        torch.testing.assert_close(a[k], b[k])
    folder = export(tmp_path / "whole", tmp_path / "exported")
    cfg = json.loads((folder / "config.json").read_text())
    assert cfg["mouth_scale"] == 0.05 and cfg["pose_scale"] == [0.2, 0.1, 0.05]
    before = load_file(str(mouthed_weights / "model.safetensors"))
    after = load_file(str(folder / "model.safetensors"))
    assert set(after) == set(before)
    moved = {k for k in before if not torch.equal(after[k], before[k])}
    assert moved and all(k.startswith("audio_content.") for k in moved)


def test_mouth_teacher_stage_refuses_weights_without_a_mouth_entry_and_missing_options(tiny_weights, s2f_tree,
                                                                                       tmp_path):  # fmt: skip
    from s2tf_cli.training.trainer import train

    with pytest.raises(ValueError, match="carry no mouth entry"):
        train(_recipe(tiny_weights, tiny_weights, [s2f_tree]), tmp_path / "run")
    recipe = tmp_path / "teach.json"
    recipe.write_text(json.dumps({"model": {"preset": "tiny"}, "steps": {"mouth_teacher": 2, "visual": 0, "sync": 0,
                                                                        "finetune": 0}}))  # fmt: skip
    base = ["train", str(recipe), "--init", str(tiny_weights), "--out", str(tmp_path / "out"), "--cpu"]
    result = CliRunner().invoke(app, base + ["--voices", str(s2f_tree)])
    assert result.exit_code != 0 and "needs --init (weights with a mouth entry) and --teacher" in result.output
    result = CliRunner().invoke(app, base + ["--teacher", str(tiny_weights), "--voices", str(tmp_path / "nowhere")])
    assert result.exit_code != 0 and "nowhere: no such voice folder" in result.output
    assert not (tmp_path / "out").exists()


def test_a_clip_the_teacher_cannot_speak_is_skipped_once(mouthed_weights, tiny_weights, tmp_path, caplog):
    import soundfile as sf
    from conftest import speechlike

    from s2tf_cli.hub import load_model, resolve
    from s2tf_cli.training.mouth_teacher_stage import read_teacher

    root = tmp_path / "librispeech"
    root.mkdir()
    sf.write(root / "0-1-0000.flac", speechlike(2.0, seed=3), 16000)
    sf.write(root / "1-1-0000.flac", np.zeros(32000, np.float32), 16000)  # silence: no speech found
    (root / "speakers.csv").write_text("file,speaker,gender,seconds\n0-1-0000.flac,0,m,2.0\n1-1-0000.flac,1,f,2.0\n")
    cfg = _recipe(mouthed_weights, tiny_weights, [root])
    model = load_model(resolve(str(mouthed_weights)))
    files = read_teacher(cfg, model, tmp_path / "teacher")
    assert [str(np.load(f)["person"]) for f in files] == ["librispeech-0"]
    assert "1-1-0000.flac skipped: no speech found" in caplog.text
    assert len(list((tmp_path / "teacher").glob("*.npz"))) == 2  # the skip is remembered, not retried
    assert read_teacher(cfg, model, tmp_path / "teacher") == files
