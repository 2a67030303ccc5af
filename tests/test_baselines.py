"""The comparison models of `s2tf eval`: the Voice2Face-style baseline (train, resume, export, load,
score) and the ablation recipes of S2TF."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from s2tf_cli.cli import app
from s2tf_cli.cli.eval import DIFF_ROW, ORACLE_ROW

runner = CliRunner()
CONFIGS = Path(__file__).resolve().parent.parent / "configs"


@pytest.fixture(scope="module")
def baseline_run(prepared_corpus, tmp_path_factory):
    """A tiny baseline trained 3 voice + 3 GAN steps, in two goes (the second resumes)."""
    root = tmp_path_factory.mktemp("v2f")
    recipe = root / "recipe.json"
    recipe.write_text(json.dumps({"baseline": "voice2face", "model": {"preset": "tiny"}, "voice_steps": 3,
                                  "gan_steps": 3, "batch_size": 4, "log_every": 1, "checkpoint_every": 2}))  # fmt: skip
    run = root / "run"
    first = runner.invoke(
        app, ["train", str(recipe), "-o", str(run), "--corpus", str(prepared_corpus), "--max-steps", "4"]
    )
    assert first.exit_code == 0, first.output
    assert "trained to step 4 of 6" in first.output
    second = runner.invoke(app, ["train", str(recipe), "-o", str(run), "--corpus", str(prepared_corpus)])
    assert second.exit_code == 0, second.output
    assert "trained to step 6 of 6" in second.output
    return run


def test_baseline_trains_both_phases_and_resumes(baseline_run):
    voice = [json.loads(x) for x in (baseline_run / "metrics-voice.jsonl").read_text().splitlines()]
    gan = [json.loads(x) for x in (baseline_run / "metrics-gan.jsonl").read_text().splitlines()]
    assert [r["step"] for r in voice] == [1, 2, 3] and [r["step"] for r in gan] == [4, 5, 6]
    assert all(np.isfinite(r["speaker_ce"]) for r in voice)
    assert all(np.isfinite(r["loss_g"]) and np.isfinite(r["loss_d"]) for r in gan)
    assert json.loads((baseline_run / "summary.json").read_text())["steps"] == 6


def test_exported_baseline_loads_strictly_and_draws_faces(baseline_run, tmp_path, voices):
    from s2tf_cli.baselines.voice2face import Voice2FacePipeline
    from s2tf_cli.errors import UsageError
    from s2tf_cli.loader import load

    out = tmp_path / "v2f"
    result = runner.invoke(app, ["export", str(baseline_run), str(out)])
    assert result.exit_code == 0, result.output
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["architecture"] == "voice2face" and cfg["trained_steps"] == 6
    assert "estimate" in (out / "README.md").read_text()
    pipe = load(str(out), device="cpu")
    assert isinstance(pipe, Voice2FacePipeline) and not pipe.can_embed_faces
    a, b = pipe.face(voices["low"])[0], pipe.face(voices["low"])[0]
    assert a.shape == (32, 32, 3) and a.dtype == np.uint8
    np.testing.assert_array_equal(a, b)
    e = pipe.voice_identity(voices["high"])
    assert e.shape == (8,) and abs(float(e.norm()) - 1.0) < 1e-5
    with pytest.raises(UsageError, match="frontal faces only"):
        pipe.face(voices["low"], pose="x.jpg")


def test_baseline_continues_from_exported_weights_and_adds_up_its_steps(baseline_run, prepared_corpus, tmp_path):
    from safetensors.torch import load_file

    from s2tf_cli.baselines.train_voice2face import Voice2FaceModel, Voice2FaceRecipe, warm_start
    from s2tf_cli.baselines.voice2face import tiny_config

    first = tmp_path / "first"
    assert runner.invoke(app, ["export", str(baseline_run), str(first)]).exit_code == 0
    fresh = Voice2FaceModel(tiny_config())
    assert warm_start(fresh, str(first)) == 6
    shipped = load_file(str(first / "model.safetensors"))
    assert all(torch.equal(v, shipped[k]) for k, v in fresh.state_dict().items())

    recipe = tmp_path / "more.json"
    recipe.write_text(json.dumps({"baseline": "voice2face", "model": {"preset": "tiny"}, "init": str(first),
                                  "voice_steps": 0, "gan_steps": 2, "batch_size": 4, "seed": 1}))  # fmt: skip
    run = tmp_path / "more"
    result = runner.invoke(app, ["train", str(recipe), "-o", str(run), "--corpus", str(prepared_corpus)])
    assert result.exit_code == 0, result.output
    second = tmp_path / "second"
    assert runner.invoke(app, ["export", str(run), str(second)]).exit_code == 0
    assert json.loads((second / "config.json").read_text())["trained_steps"] == 8
    assert "8 training steps, 2 of them in this run, continued from" in (second / "README.md").read_text()
    moved = load_file(str(second / "model.safetensors"))
    assert any(not torch.equal(moved[k], shipped[k]) for k in shipped if k.startswith("generator."))

    other = Voice2FaceRecipe.from_dict({"model": {**tiny_config().to_dict(), "embed_dim": 16}})
    with pytest.raises(ValueError, match="model config differs"):
        warm_start(Voice2FaceModel(other.model), str(first))


def test_baseline_weights_with_a_stray_tensor_are_refused(baseline_run, tmp_path):
    import torch
    from safetensors.torch import load_file, save_file

    from s2tf_cli.errors import WeightsError
    from s2tf_cli.loader import load

    out = tmp_path / "v2f"
    assert runner.invoke(app, ["export", str(baseline_run), str(out)]).exit_code == 0
    state = load_file(str(out / "model.safetensors"))
    state["extra.weight"] = torch.zeros(3)
    save_file(state, str(out / "model.safetensors"))
    with pytest.raises(WeightsError, match="1 unexpected"):
        load(str(out), device="cpu")


@pytest.mark.slow
def test_eval_scores_s2tf_and_the_baseline_as_rows_of_one_table(prepared_corpus, tiny_weights, baseline_run, tmp_path):
    v2f = tmp_path / "v2f"
    assert runner.invoke(app, ["export", str(baseline_run), str(v2f)]).exit_code == 0
    out = tmp_path / "eval.json"
    result = runner.invoke(app, ["eval", str(prepared_corpus), "-w", str(tiny_weights), "-w", str(v2f), "--split",
                                 "train", "--sync-clips", "1", "--json", str(out), "--figures", str(tmp_path / "fig")])  # fmt: skip
    assert result.exit_code == 0, result.output
    rows = json.loads(out.read_text())
    oracles = [k for k in rows if k.startswith(ORACLE_ROW)]
    assert len(oracles) == 2, "the label-oracle rows come with every table"
    (diff_name,) = [k for k in rows if k.startswith(DIFF_ROW)]
    diff = rows.pop(diff_name)
    rows = {k: v for k, v in rows.items() if k not in oracles}
    assert len(rows) == 2
    assert diff_name == f"{DIFF_ROW} {list(rows)[1]} − {list(rows)[0]}"
    assert diff["R@5"] == 0.0 and diff["R@5 ±"] == 0.0, "both rows find all 4 people"
    assert -100.0 <= diff["gender %"] <= 100.0 and "voice R@5" not in diff, "only what both models have"
    assert diff["cosine"] == pytest.approx(rows[list(rows)[1]]["cosine"] - rows[list(rows)[0]]["cosine"])
    s2tf_row, v2f_row = rows.values()
    for row in rows.values():
        assert row["people"] == 4 and -1.0 <= row["cosine"] <= 1.0 and row["R@5"] == 100.0
    assert "voice R@1" in s2tf_row and "LMD" in s2tf_row
    assert "voice R@1" not in v2f_row and "LMD" not in v2f_row, "no face encoder: nothing to score there"
    v2f_figs = sorted(p.name for p in (tmp_path / "fig").iterdir() if p.is_dir() for p in p.glob("*.png"))
    assert "voice_to_face.png" in v2f_figs


def test_ablation_recipes_differ_from_the_default_only_in_their_losses():
    from s2tf_cli.baselines.train_voice2face import Voice2FaceRecipe
    from s2tf_cli.training.config import TrainConfig

    base = TrainConfig.load(CONFIGS / "s2tf-cpu.json").to_dict()
    no_cl = TrainConfig.load(CONFIGS / "experiments/ablation-no-centroids.json").to_dict()
    no_nce = TrainConfig.load(CONFIGS / "experiments/ablation-no-contrastive.json").to_dict()
    assert no_cl["loss"]["centroid"] == 0.0 and no_nce["loss"]["id_sync"] == no_nce["loss"]["s_sync"] == 0.0
    for other in (no_cl, no_nce):
        assert {k: v for k, v in other.items() if k != "loss"} == {k: v for k, v in base.items() if k != "loss"}
    v2f = Voice2FaceRecipe.load(CONFIGS / "baseline-voice2face.json")
    assert v2f.voice_steps + v2f.gan_steps == sum(base["steps"][k] for k in ("visual", "sync", "finetune"))
    assert v2f.batch_size == base["batch_size"] and v2f.model.image_size == base["model"]["image_size"]


def test_long_baseline_recipe_matches_the_budget_it_was_compared_at():
    """The same-budget comparison: the baseline's steps add up to run 7's, the weights the card compares
    it with; the shipped weights are run 7 plus later runs, each carded with its own step range."""
    from s2tf_cli.baselines.train_voice2face import Voice2FaceRecipe
    from s2tf_cli.config import ModelConfig

    short = Voice2FaceRecipe.load(CONFIGS / "baseline-voice2face.json")
    long = Voice2FaceRecipe.load(CONFIGS / "experiments/baseline-voice2face-long.json")
    shipped = ModelConfig.load(CONFIGS.parent / "weights" / "s2tf-cpu" / "config.json")
    card = (CONFIGS.parent / "weights" / "s2tf-cpu" / "README.md").read_text()
    budget = long.voice_steps + long.gan_steps
    assert f"| 7 | 13351-{budget} |" in card and f"Both trained {budget} steps" in card
    assert shipped.trained_steps >= budget
    assert long.voice_steps == short.voice_steps and long.batch_size == short.batch_size and long.seed == short.seed
