"""benchmarks/run.py stays runnable: its helpers on the tiny model (figures are reported, never asserted)."""

import importlib.util
import math
from pathlib import Path

import soundfile as sf

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "run.py"


def _bench():
    spec = importlib.util.spec_from_file_location("s2tf_bench", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_voice_of_any_length_is_real_speech_tiled(tmp_path):
    path = _bench().make_voice(tmp_path, 12.5)
    info = sf.info(path)
    assert info.samplerate == 16000 and abs(info.duration - 12.5) < 1e-3


def test_floor_counts_generator_flops_and_matmul_rate(pipeline):
    floor = _bench().bench_floor(pipeline)
    assert floor["generator GFLOP/frame"] > 0 and floor["matmul GFLOP/s"] > 0
    assert math.isclose(floor["floor frames/s (matmul rate / FLOPs)"],
                        floor["matmul GFLOP/s"] / floor["generator GFLOP/frame"], rel_tol=1e-6)  # fmt: skip


def test_train_step_figures_on_the_tiny_model(pipeline):
    res = _bench().bench_train_step(pipeline.cfg, batch=2, repeats=1)
    for stage in ("visual", "finetune"):
        fp32, bf16 = (
            res[f"train step s, {stage}, batch 2 (fp32)"],
            res[f"train step s, {stage}, batch 2 (bf16 autocast)"],
        )
        assert fp32 > 0 and bf16 > 0 and math.isclose(res[f"train step bf16 speed-up, {stage}"], fp32 / bf16)


def test_loader_figures_on_a_prepared_corpus(prepared_corpus):
    from s2tf_cli.baselines.voice2face import tiny_config

    res = _bench().bench_loader(prepared_corpus, steps=2, model_cfg=tiny_config())
    assert res["baseline batch draw s"] > 0 and res["baseline GAN step s (batch ready)"] > 0
    draw, step = res["baseline batch draw s"], res["baseline GAN step s (batch ready)"]
    assert math.isclose(res["batch draw share of a baseline step"], draw / (draw + step))


def test_talk_figures_and_table(pipeline, voices, tmp_path, tiny_weights):
    bench = _bench()
    res = bench.bench_talk(pipeline, ["--weights", str(tiny_weights), "--device", "cpu"], tmp_path, voices["low"],
                           sf.info(voices["low"]).duration)  # fmt: skip
    assert res["talk frames"] == math.ceil(sf.info(voices["low"]).duration * 25)
    assert res["talk RTF generation"] > 0 and res[next(k for k in res if k.startswith("talk peak RSS"))] > 50
    table = bench.to_markdown({"machine": bench.machine(), "weights": "w", "image size": 32, **res})
    assert table.count("\n| talk") == len(res) and "torch threads" in table


def test_retrieve_figures_from_a_source_folder(pipeline, voices, tmp_path, tiny_weights, pose_image, monkeypatch):
    import shutil

    source = tmp_path / "faces" / "nested"
    source.mkdir(parents=True)
    for i in range(4):
        shutil.copy(pose_image, source / f"p{i}.jpg")
    (source / "notes.txt").write_text("not an image")
    work = tmp_path / "work"
    work.mkdir()
    res = _bench().bench_retrieve(pipeline, ["--weights", str(tiny_weights), "--device", "cpu"], work, voices["low"],
                                  tmp_path / "faces", 3)  # fmt: skip
    assert res["gallery files"] == 3 and sorted(p.name for p in (work / "gallery").iterdir()) == [
        "00000.jpg",
        "00001.jpg",
        "00002.jpg",
    ]
    assert res["retrieve gallery faces/s"] == 3 / res["retrieve first s"] and res["retrieve repeat query warm s"] > 0


def test_precision_figures_and_table_row(pipeline, voices):
    bench = _bench()
    res = bench.bench_precision(pipeline, voices["low"])
    assert set(res) == {"talk frames/s (fp32)", "talk frames/s (bf16)"} and min(res.values()) > 0
    table = bench.to_markdown({"machine": {"cpu": "x"}, "weights": "w", "image size": 32, "precision": "bf16", **res})
    assert "32 px, precision bf16" in table and table.count("| talk frames/s (") == 2
    listed = bench.to_markdown({"machine": {"cpu": "x"}, "weights": "w", "image size": 32, "rss MB": [501.0, 506.25]})
    assert "| rss MB | 501, 506 |" in listed  # a list of figures is shown figure by figure


def test_profiles_name_operators_with_shares(pipeline, voices):
    bench = _bench()
    for rows in (bench.profile_talk(pipeline, voices["low"]), bench.profile_top(lambda: pipeline.face(voices["low"]))):
        assert len(rows) == 3 and all(r.endswith(" %") and r.split()[0] for r in rows)


def test_stream_figures(pipeline, voices):
    seconds = sf.info(voices["low"]).duration
    res = _bench().bench_stream(pipeline, voices["low"], seconds)
    assert res["stream frames"] == math.ceil(seconds * 25 - 1e-9)
    assert res["stream latency ms (look-ahead + chunk p95)"] > res["stream chunk ms p95 (40 ms audio)"] > 0
    assert res["stream RTF"] > 0


def test_live_server_bench_streams_a_real_recording_and_reports_memory(pipeline):
    res = _bench().bench_live_server(pipeline, 0.15, speed=6.0)
    (rss,) = [v for k, v in res.items() if k.startswith("live server RSS MB")]
    assert len(rss) == 2 and all(r > 0 for r in rss) and res["live server frames received"] > 0
