"""Output files: nothing partial is ever left, folders are made, bad destinations are refused first."""

import stat
from pathlib import Path

import imageio_ffmpeg
import pytest
from typer.testing import CliRunner

from s2tf_cli.cli import app
from s2tf_cli.outputs import atomic_path

runner = CliRunner()


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def _leftovers(folder):
    return sorted(p.name for p in folder.iterdir())


def test_atomic_path_leaves_nothing_when_the_block_fails(tmp_path):
    out = tmp_path / "o.png"
    with pytest.raises(RuntimeError):
        with atomic_path(out) as tmp:
            tmp.write_bytes(b"half a file")
            raise RuntimeError("interrupted")
    assert _leftovers(tmp_path) == []


def test_atomic_path_keeps_the_old_file_until_the_new_one_is_complete(tmp_path):
    out = tmp_path / "o.png"
    out.write_bytes(b"old")
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(out) as tmp:
            tmp.write_bytes(b"new, unfinished")
            raise KeyboardInterrupt
    assert out.read_bytes() == b"old" and _leftovers(tmp_path) == ["o.png"]
    with atomic_path(out) as tmp:
        tmp.write_bytes(b"new")
    assert out.read_bytes() == b"new" and _leftovers(tmp_path) == ["o.png"]
    assert stat.S_IMODE(out.stat().st_mode) & 0o044, "a finished output is readable like any file"


def test_talk_interrupted_mid_video_leaves_no_file(pipeline, voices, tmp_path):
    out = tmp_path / "clip.mp4"
    seen = []

    def stop_after_ten(n):
        seen.append(n)
        if len(seen) == 10:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        pipeline.talk(voices["low"], out, progress=stop_after_ten)
    assert len(seen) == 10 and _leftovers(tmp_path) == []


def test_missing_parent_folders_are_created(tiny_weights, voices, tmp_path):
    out = tmp_path / "a" / "b c" / "face.png"
    result = run("face", voices["low"], "-o", out, "-w", tiny_weights)
    assert result.exit_code == 0, result.stderr
    assert out.read_bytes()[:4] == b"\x89PNG" and _leftovers(out.parent) == ["face.png"]


def test_unwritable_destination_is_refused_before_the_model_loads(voices, tmp_path):
    """A file where a folder should be: refused with exit 2 before any weights are read (none exist)."""
    (tmp_path / "file").write_text("x")
    result = run("face", voices["low"], "-o", tmp_path / "file" / "o.png", "-w", tmp_path / "no-such-weights")
    assert result.exit_code == 2, result.stderr
    assert "cannot create its folder" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("what", ["folder", "file"])
def test_read_only_destination_is_refused_before_the_model_loads(voices, tmp_path, monkeypatch, what):
    """Permission bits do not bind root (the test runner here), so the kernel's answer is stood in for."""
    import os

    out = tmp_path / "ro" / "o.png"
    out.parent.mkdir()
    out.write_bytes(b"old")
    denied = out.parent if what == "folder" else out
    real_access = os.access

    def access(p, mode, **kw):
        return False if Path(p) == denied and mode & os.W_OK else real_access(p, mode, **kw)

    monkeypatch.setattr(os, "access", access)
    result = run("face", voices["low"], "-o", out, "-w", tmp_path / "no-such-weights")
    assert result.exit_code == 2, result.stderr
    assert ("folder is not writable" if what == "folder" else "file exists and is not writable") in result.stderr
    assert out.read_bytes() == b"old" and "Traceback" not in result.stderr


def test_failed_talk_replaces_nothing(tiny_weights, tmp_path):
    out = tmp_path / "o.mp4"
    out.write_bytes(b"the user's earlier video")
    bad = tmp_path / "bad.wav"
    bad.write_text("not audio")
    result = run("talk", bad, "-o", out, "-w", tiny_weights)
    assert result.exit_code != 0 and out.read_bytes() == b"the user's earlier video"
    assert _leftovers(tmp_path) == ["bad.wav", "o.mp4"]


def test_finished_talk_is_a_complete_video(tiny_weights, voices, tmp_path):
    out = tmp_path / "o.mp4"
    assert run("talk", voices["low"], "-o", out, "-w", tiny_weights).exit_code == 0
    reader = imageio_ffmpeg.read_frames(str(out))
    meta = next(reader)
    frames = sum(1 for _ in reader)
    assert frames == 58 and meta["fps"] == 25  # ceil(2.3 s x 25)
