"""Resolving and loading weights: local folders, the registry, a pre-populated Hub cache offline,
and every way a folder can be refused (pickles, wrong keys, shapes, corruption, config version)."""

import json
import shutil
import time

import pytest
import torch
from safetensors.torch import load_file, save_file

from s2tf_cli import hub
from s2tf_cli.errors import WeightsError
from s2tf_cli.hub import load_model, resolve
from s2tf_cli.registry import REGISTRY, RegistryEntry

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def _copy(src, dst):
    shutil.copytree(src, dst)
    return dst


def _fake_hub_cache(cache, repo_id, folder, commit=COMMIT):
    """The layout huggingface_hub writes: models--org--name/{refs/main, snapshots/<commit>/...}."""
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    snap = repo / "snapshots" / commit
    snap.mkdir(parents=True)
    for f in folder.iterdir():
        shutil.copy(f, snap / f.name)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    return snap


def test_local_folder_loads_and_is_hashed(tiny_weights):
    source = resolve(str(tiny_weights))
    assert source.kind == "local" and source.folder == tiny_weights
    assert source.sha256 == hub.sha256_file(tiny_weights / "model.safetensors")
    model = load_model(source)
    state = load_file(str(tiny_weights / "model.safetensors"))
    assert all(torch.equal(model.state_dict()[k], v) for k, v in state.items())


def test_default_without_installed_weights_says_so(monkeypatch):
    monkeypatch.delenv("S2TF_WEIGHTS", raising=False)
    monkeypatch.setattr(hub, "embedded_folder", lambda entry: None)
    with pytest.raises(WeightsError, match="no weights are installed"):
        resolve(None)


def test_env_var_selects_weights(monkeypatch, tiny_weights):
    monkeypatch.setenv("S2TF_WEIGHTS", str(tiny_weights))
    assert resolve(None).folder == tiny_weights


def test_embedded_weights_checksum_verified(monkeypatch, tiny_weights, tmp_path):
    folder = _copy(tiny_weights, tmp_path / "emb")
    digest = hub.sha256_file(folder / "model.safetensors")
    monkeypatch.setattr(hub, "embedded_folder", lambda entry: folder)
    monkeypatch.setitem(REGISTRY, "t", RegistryEntry("t", "org/t", embedded="emb", sha256=digest))
    assert resolve("t").kind == "embedded"
    data = bytearray((folder / "model.safetensors").read_bytes())
    data[-1] ^= 0xFF
    (folder / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="checksum mismatch"):
        resolve("t")


def test_hub_cache_offline_by_repo_id(monkeypatch, tiny_weights, tmp_path):
    cache = tmp_path / "hf"
    _fake_hub_cache(cache, "someone/tiny-s2tf", tiny_weights)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for spec in ("someone/tiny-s2tf", f"someone/tiny-s2tf@{COMMIT}"):
        source = resolve(spec, cache_dir=cache)
        assert source.kind == "hub" and source.revision == COMMIT
        load_model(source)


def test_hub_cache_through_hf_home(monkeypatch, tiny_weights, tmp_path):
    from s2tf_cli.pipeline import S2TF

    _fake_hub_cache(tmp_path / "hf", "someone/tiny-s2tf", tiny_weights)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model = S2TF.from_pretrained("someone/tiny-s2tf", device="cpu", cache_dir=tmp_path / "hf")
    assert model.info()["revision"] == COMMIT


def test_absent_hub_model_offline_fails_fast(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.monotonic()
    with pytest.raises(WeightsError, match="HF_HUB_OFFLINE.*s2tf download"):
        resolve("nobody/missing", cache_dir=tmp_path)
    assert time.monotonic() - start < 5


def test_registry_entry_from_pinned_hub_revision(monkeypatch, tiny_weights, tmp_path):
    _fake_hub_cache(tmp_path, "org/pinned", tiny_weights)
    digest = hub.sha256_file(tiny_weights / "model.safetensors")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setitem(REGISTRY, "pinned", RegistryEntry("pinned", "org/pinned", revision=COMMIT, sha256=digest))
    assert resolve("pinned", cache_dir=tmp_path).revision == COMMIT
    monkeypatch.setitem(REGISTRY, "pinned", RegistryEntry("pinned", "org/pinned", revision=COMMIT, sha256="0" * 64))
    with pytest.raises(WeightsError, match="checksum mismatch"):
        resolve("pinned", cache_dir=tmp_path)


def test_unknown_name():
    with pytest.raises(WeightsError, match="not a known weights name"):
        resolve("no-such-model")


def test_pickle_only_folder_is_refused_unread(tmp_path):
    (tmp_path / "pytorch_model.bin").write_bytes(b"this would be a pickle; it must never be opened")
    with pytest.raises(WeightsError, match="only pickle weights.*never loads pickles"):
        resolve(str(tmp_path))


def test_missing_config(tiny_weights, tmp_path):
    folder = _copy(tiny_weights, tmp_path / "w")
    (folder / "config.json").unlink()
    with pytest.raises(WeightsError, match="no config.json"):
        resolve(str(folder))


def test_missing_and_unexpected_keys(tiny_weights, tmp_path):
    folder = _copy(tiny_weights, tmp_path / "w")
    state = load_file(str(folder / "model.safetensors"))
    state.pop("generator.const")
    state["extra.weight"] = torch.zeros(1)
    save_file(state, str(folder / "model.safetensors"))
    with pytest.raises(WeightsError, match="1 missing.*generator.const.*1 unexpected.*extra.weight"):
        load_model(resolve(str(folder)))


def test_wrong_shape(tiny_weights, tmp_path):
    folder = _copy(tiny_weights, tmp_path / "w")
    state = load_file(str(folder / "model.safetensors"))
    state["generator.const"] = torch.zeros(1, 2, 3, 4)
    save_file(state, str(folder / "model.safetensors"))
    with pytest.raises(WeightsError, match="generator.const has shape"):
        load_model(resolve(str(folder)))


def test_truncated_weights_file(tiny_weights, tmp_path):
    folder = _copy(tiny_weights, tmp_path / "w")
    data = (folder / "model.safetensors").read_bytes()
    (folder / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(WeightsError, match="corrupted weights file"):
        load_model(resolve(str(folder)))


def test_incompatible_config_version(tiny_weights, tmp_path):
    folder = _copy(tiny_weights, tmp_path / "w")
    cfg = json.loads((folder / "config.json").read_text())
    cfg["format_version"] = 99
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(WeightsError, match="format_version 99"):
        load_model(resolve(str(folder)))


def test_saved_folder_has_hub_layout_and_card(tiny_weights):
    assert {p.name for p in tiny_weights.iterdir()} == {"config.json", "model.safetensors", "README.md"}
    card = (tiny_weights / "README.md").read_text()
    assert "estimate" in card and "identification" in card


def test_a_pinned_sha256_loads_those_weights_and_refuses_others(tiny_weights, tmp_path):
    from s2tf_cli.errors import WeightsError
    from s2tf_cli.hub import resolve, sha256_file

    digest = sha256_file(tiny_weights / "model.safetensors")
    assert resolve(f"{tiny_weights}@sha256:{digest[:12]}").sha256 == digest
    assert resolve(f"{tiny_weights}@sha256:{digest.upper()}").folder == tiny_weights
    other = "0" * 12 if not digest.startswith("0" * 12) else "f" * 12
    with pytest.raises(WeightsError, match=f"now holds other weights \\(sha256 {digest[:12]}"):
        resolve(f"{tiny_weights}@sha256:{other}")
    with pytest.raises(WeightsError, match="at least 12 hex digits"):
        resolve(f"{tiny_weights}@sha256:abc")
