"""Per-frame precision: bf16 autocast of the content encoder and generator, fp32 identity encoders."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from s2tf_cli.cli import main
from s2tf_cli.errors import UsageError
from s2tf_cli.pipeline import S2TF
from s2tf_cli.precision import select_precision


@pytest.fixture(scope="module")
def both(tiny_weights):
    return (
        S2TF.from_pretrained(tiny_weights, device="cpu", precision="fp32"),
        S2TF.from_pretrained(tiny_weights, device="cpu", precision="bf16"),
    )


def test_select_precision():
    cpu = torch.device("cpu")
    assert select_precision("fp32", cpu) is None
    assert select_precision("bf16", cpu) is torch.bfloat16
    assert select_precision("auto", cpu) in (None, torch.bfloat16)
    with pytest.raises(UsageError, match="--precision must be auto, fp32 or bf16, not 'half'"):
        select_precision("half", cpu)


def test_bad_precision_fails_before_loading(tmp_path):
    with pytest.raises(UsageError, match="--precision"):
        S2TF.from_pretrained(tmp_path / "not-there", device="cpu", precision="fp16")


def test_bf16_faces_are_close_to_fp32_and_deterministic(both, voices):
    fp32, bf16 = both
    assert fp32.info()["precision"] == "fp32" and bf16.info()["precision"] == "bf16"
    a = fp32.face(voices["low"])[0].astype(int)
    b = bf16.face(voices["low"])[0]
    assert b.dtype == np.uint8 and b.shape == a.shape
    np.testing.assert_array_equal(b, bf16.face(voices["low"])[0])
    assert np.abs(a - b.astype(int)).mean() < 4.0  # a few of 255 levels
    assert not np.array_equal(a, b)  # bf16 really ran


def test_bf16_talk_frames_match_fp32_closely(both, voices):
    fp32, bf16 = both
    n32, f32 = fp32.talk_frames(voices["high"], fps=10)
    n16, f16 = bf16.talk_frames(voices["high"], fps=10)
    a, b = np.stack(list(f32)).astype(int), np.stack(list(f16)).astype(int)
    assert n32 == n16 == len(a) == len(b)
    assert np.abs(a - b).mean() < 4.0
    # the identity is computed in fp32 either way
    torch.testing.assert_close(fp32.voice_identity(voices["high"]), bf16.voice_identity(voices["high"]))


def test_cli_precision_option(tiny_weights, voices, tmp_path, capsys):
    out = tmp_path / "f.png"
    with pytest.raises(SystemExit) as exc:
        main(["face", str(voices["low"]), "-o", str(out), "-w", str(tiny_weights), "--precision", "fp32"])
    assert exc.value.code == 0 and out.is_file()
    with pytest.raises(SystemExit) as exc:
        main(["face", str(voices["low"]), "-o", str(tmp_path / "g.png"), "-w", str(tiny_weights), "--precision", "x"])
    assert exc.value.code == 2 and not (tmp_path / "g.png").exists()
    assert "--precision must be auto, fp32 or bf16, not 'x'" in capsys.readouterr().err
