"""Every shipped recipe trains: one step on tiny data in the layout it reads, warm-started from the weights
it pins, or, where `--init` comes from the command line, from a weights folder of the recipe's own model
(as the run-18 chain gives each stage the previous stage's export). The recipes that pin weights the
default name held before (`HISTORICAL_INITS`) cannot start here: test_training checks that they are refused
with the place those weights live."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from test_training import HISTORICAL_INITS, INIT_FROM_COMMAND_LINE, RECIPES

from s2tf_cli.training.config import TrainConfig, read_recipe

pytestmark = pytest.mark.slow


def _pinned_elsewhere(path: Path) -> bool:
    recipe = read_recipe(path)
    spec = str(recipe.get("generator_init") or recipe.get("init") or "")
    return spec.partition("@sha256:")[2] in HISTORICAL_INITS


NAMES = sorted(str(p.relative_to(RECIPES)) for p in RECIPES.rglob("*.json") if not _pinned_elsewhere(p))


@pytest.fixture(scope="module")
def real_weights(tmp_path_factory) -> Path:
    """A weights folder of the cpu-real model (random weights): what the run-18 chain's stages pass on."""
    from s2tf_cli.config import preset
    from s2tf_cli.hub import save_folder
    from s2tf_cli.models.s2tf import S2TFModel

    torch.manual_seed(0)
    return save_folder(S2TFModel(preset("cpu-real")), tmp_path_factory.mktemp("w") / "cpu-real", "test weights")


@pytest.fixture(scope="module")
def real_voiceset(tmp_path_factory, s2f_tree, libri_tree, face_folders, real_weights) -> Path:
    from s2tf_cli.data.voiceset import build_voiceset
    from s2tf_cli.hub import load_model, resolve

    out = tmp_path_factory.mktemp("voiceset") / "voices"
    build_voiceset([s2f_tree, face_folders["real"], libri_tree], out, load_model(resolve(str(real_weights))).eval(),
                   augmented=0)  # fmt: skip
    return out


@pytest.fixture(scope="module")
def photos(tmp_path_factory, face_folders) -> Path:
    from typer.testing import CliRunner

    from s2tf_cli.cli import app

    out = tmp_path_factory.mktemp("photos") / "photos"
    args = [
        "data",
        "photos",
        str(face_folders["celeb"]),
        str(face_folders["flat"]),
        str(out),
        "--size",
        "32",
        "-j",
        "1",
    ]
    assert CliRunner().invoke(app, args).exit_code == 0
    return out


@pytest.mark.parametrize("name", NAMES)
def test_every_recipe_warm_starts_and_takes_a_step(name, prepared_corpus, faceset, real_voiceset, real_weights, photos,
                                                   tmp_path):  # fmt: skip
    """`s2tf train` of a recipe that states only a smaller batch over the shipped one (`"base"`)."""
    from typer.testing import CliRunner

    from s2tf_cli.cli import app

    recipe = read_recipe(RECIPES / name)
    model = recipe.get("model", {})
    real = isinstance(model, dict) and model.get("preset") == "cpu-real"
    small = {"base": str(RECIPES / name), "batch_size": 4, "log_every": 1, "checkpoint_every": 1}
    small.update({"sample_every": 0, "precision": "fp32"} if "baseline" not in recipe else {})
    (tmp_path / "small.json").write_text(json.dumps(small))
    args = ["train", str(tmp_path / "small.json"), "--out", str(tmp_path / "run"), "--max-steps", "1", "--cpu"]
    data = {"corpus": prepared_corpus, "faceset": faceset, "voiceset": real_voiceset, "extra_faces": photos}
    for key, folder in data.items():
        if recipe.get(key) is not None or (key == "extra_faces" and recipe.get("extra_face_share")):
            args += [f"--{key.replace('_', '-')}", str(folder)]
    given = name in INIT_FROM_COMMAND_LINE or (real and "init" in recipe and not recipe["init"])
    if given:
        args += ["--init", str(real_weights) if real else "s2tf-cpu"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    ckpt = next((tmp_path / "run").rglob("module.safetensors")).parent
    state = load_file(str(ckpt / "module.safetensors"))
    assert all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point()), "finite after a step"
    cfg = None if "baseline" in recipe else TrainConfig.load(tmp_path / "small.json", {"init": "x"} if given else None)
    if cfg is not None and cfg.init and "centroids" in cfg.frozen and "centroids" not in cfg.reinit:
        from s2tf_cli.hub import resolve

        spec = str(real_weights) if given else cfg.init  # warm-started: frozen centroids hold the init's
        init = load_file(str(resolve(spec).folder / "model.safetensors"))
        assert torch.equal(state["model.centroids.weight"], init["centroids.weight"])
