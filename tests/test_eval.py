"""`s2tf eval` end to end on a tiny corpus and a tiny model: every figure present and in range,
the report, the pictures with provenance, and its errors."""

import json

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from s2tf_cli.cli import app
from s2tf_cli.cli.eval import ORACLE_ROW

runner = CliRunner()
QUARTERS = (0.0, 25.0, 50.0, 75.0, 100.0)  # a share of 4 people


def _whole(x: float) -> bool:
    return abs(x - round(x)) < 1e-6


@pytest.mark.slow
def test_eval_writes_table_json_report_and_figures(prepared_corpus, tiny_weights, face_folders, tmp_path):
    import shutil

    weights = shutil.copytree(tiny_weights, tmp_path / "weights")
    out = tmp_path / "eval.json"
    result = runner.invoke(app, ["eval", str(prepared_corpus), "-w", str(weights), "--split", "train", "--update-card",
                                 "--real-voices", str(face_folders["real"]), "--sync-clips", "2", "--json", str(out),
                                 "--report", str(tmp_path / "eval.md"), "--figures", str(tmp_path / "fig")])  # fmt: skip
    assert result.exit_code == 0, result.output
    rows = json.loads(out.read_text())
    for name in ("gender", "gender, age group"):
        oracle = rows.pop(f"{ORACLE_ROW} ({name})")
        assert (
            oracle["people"] == 4 and oracle["R@5"] == oracle["voice R@5"] == 100.0 and _whole(oracle["R@1"] * 8 / 100)
        )  # ties count half
    (row,) = rows.values()
    from s2tf_cli.evaluation.catalog import BY_NAME

    unknown = sorted({k for r in (row, oracle) for k in r} - set(BY_NAME))
    assert not unknown, f"figures the catalog does not know: {unknown}"
    table = next(line for line in (tmp_path / "eval.md").read_text().splitlines() if line.startswith("| weights |"))
    assert (
        "| weights | cosine | l1 | R@1 | R@5 | R@5 ± |" in table and "trials" not in table and "real ranks" not in table
    )
    assert row["people"] == 4
    assert -1.0 <= row["cosine"] <= 1.0 and row["l1"] >= 0
    for prefix in ("", "voice "):  # known answers on 4 people: the true one is always in the top 5 and 10,
        assert row[f"{prefix}R@5"] == row[f"{prefix}R@10"] == 100.0  # and R@1 counts whole people
        assert row[f"{prefix}R@1"] in QUARTERS
    assert row["R@5"] == 100.0, "4 people: the true face is always in the top 5"
    assert row["AUC rand trials"] == 12, "every other of 4 people"
    assert 0.0 <= row["AUC rand"] <= 100.0 and _whole(row["AUC rand"] * 24 / 100), "12 trials, a tie counts half"
    assert row["gender n"] == 4 and row["gender %"] in QUARTERS  # whole faces of 4
    assert row["judge gender % blurred real faces"] in QUARTERS and row["judge gender % real faces"] in QUARTERS
    assert row["R@5 ±"] == 0.0, "every query hits: no resample of the 4 people changes R@5"
    assert all(row[k] >= 0.0 for k in ("voice R@5 ±", "AUC rand ±", "gender % ±"))
    age_se = row["age group % ±"]
    assert age_se >= 0.0 if row["age n"] >= 2 else age_se != age_se, "no standard error from fewer than 2 people"
    assert "LMD" in row and row["frames_per_s"] > 0 and row["faces_per_s"] > 0
    assert row["device"] in ("cpu fp32", "cpu bf16")  # the speed columns' device and precision
    # a random tiny model draws no face dlib can landmark: LMD is then missing (NaN), never a fake 0
    assert row["LMD clips"] == 0 and row["LMD"] != row["LMD"]
    assert row["f_ir probe clips"] == 4 and row["f_ir mouth R2"] <= 1.0
    assert row["real people"] == 1 and row["real mean rank"] == 1.0
    # `talk` on the real recording ran; a random tiny model's mouth has no landmarks: NaN, never a fake 0
    assert all(k in row for k in ("real talk gap quiet", "real talk gap loud", "real frontal gap"))
    assert row["real talk gap quiet"] != row["real talk gap quiet"] or 0.0 <= row["real talk gap quiet"] < 2.0
    assert row["real ranks"] == {"Actor_01": 1}, "Actor_01 is in the corpus's training split"
    assert "| weights |" in (tmp_path / "eval.md").read_text()
    figures = sorted(p.name for p in (tmp_path / "fig").rglob("*.png"))
    assert figures == ["mouth_vs_loudness.png", "real_people.png", "retrieval.png", "voice_to_face.png"]
    for png in (tmp_path / "fig").rglob("*.png"):
        im = Image.open(png)
        assert im.text["s2tf:synthetic"] == "true" and np.asarray(im).ndim == 3
    assert "cosine" in result.output
    card = (weights / "README.md").read_text()
    assert card.count("## Evaluation") == 1 and "| weights |" in card
    assert card.index("## Evaluation") < card.index("## Responsible use")


def test_eval_refuses_a_folder_that_is_not_a_corpus(tmp_path, tiny_weights):
    result = runner.invoke(app, ["eval", str(tmp_path), "-w", str(tiny_weights)])
    assert result.exit_code == 2
    assert "not a prepared corpus" in result.output and "Traceback" not in result.output


def test_held_out_real_people_are_marked(prepared_corpus, face_folders, tmp_path):

    from s2tf_cli.evaluation.protocol import Person, _held_out

    people = [Person("Actor_01", np.zeros(16000, np.float32), np.zeros((8, 8, 3), np.uint8)),
              Person("Actor_99", np.zeros(16000, np.float32), np.zeros((8, 8, 3), np.uint8))]  # fmt: skip
    assert _held_out(prepared_corpus, people) == {"Actor_99"}


def test_mouth_landmark_distance_measures_pixels(pose_image):
    from s2tf_cli.evaluation.protocol import _mouth_distance, frame_landmarks
    from s2tf_cli.images import load_image, resize
    from s2tf_cli.judges.landmarks import landmarks68

    face = resize(load_image(pose_image), 128)
    shifted = np.roll(face, 4, axis=0)  # the whole face 4 px lower
    frames = frame_landmarks(np.stack([face, face]), landmarks68)
    moved = frame_landmarks(np.stack([shifted, shifted]), landmarks68)
    assert _mouth_distance(frames, frames) == 0.0
    assert abs(_mouth_distance(moved, frames) - 4.0) < 1.5


def test_matched_negatives_share_gender_age_group_and_ethnicity():
    """Negatives match on age group (not the exact age) and never on a missing label."""
    from s2tf_cli.evaluation.protocol import Person, _matched

    face, voice = np.zeros((8, 8, 3), np.uint8), np.zeros(16, np.float32)
    people = [Person("a", voice, face, gender="male", age="31", ethnicity="white"),
              Person("b", voice, face, gender="male", age="44", ethnicity="white"),
              Person("c", voice, face, gender="male", age="46", ethnicity="white"),
              Person("d", voice, face, gender="female", age="", ethnicity="white"),
              Person("e", voice, face, gender="female", age="", ethnicity="white")]  # fmt: skip
    pairs = lambda keys: {(i, j) for i, j in zip(*np.nonzero(_matched(people, keys))) if i != j}  # noqa: E731
    assert pairs(("gender", "ethnicity", "age")) == {(0, 1), (1, 0)}
    assert pairs(("age",)) == {(0, 1), (1, 0)}
    assert pairs(("gender",)) == {(0, 1), (0, 2), (1, 0), (1, 2), (2, 0), (2, 1), (3, 4), (4, 3)}
    assert len(pairs(())) == 20


def test_label_oracle_ranks_by_gender_then_age_group():
    """4 men in their 30s, 4 women in their 30s, 4 women in their 70s: knowing gender and age group
    leaves each true face level with 3 others (R@1 25, R@4 100); against a same-gender negative a man
    can only tie (50), a woman wins over the other age group's 4 and ties with her own group's 3."""
    from s2tf_cli.evaluation.protocol import Person, label_oracle_metrics, label_oracle_scores

    face, voice = np.zeros((8, 8, 3), np.uint8), np.zeros(16, np.float32)
    labels = [("male", "32")] * 4 + [("female", "33")] * 4 + [("female", "71")] * 4
    people = [Person(f"p{i}", voice, face, gender=g, age=a) for i, (g, a) in enumerate(labels)]
    scores = label_oracle_scores(people)
    assert scores[0, 1] == 3 and scores[0, 4] == 1 and scores[4, 8] == 2 and scores[4, 5] == 3
    row = label_oracle_metrics(people)
    assert row["R@1"] == pytest.approx(25.0) and row["voice R@1"] == row["R@1"] and row["R@5"] == 100.0
    women = (4 + 0.5 * 3) / 7 * 100
    assert row["AUC G"] == pytest.approx((4 * 3 * 50 + 8 * 7 * women) / (4 * 3 + 8 * 7))
    assert row["AUC G trials"] == 4 * 3 + 8 * 7
    by_gender = label_oracle_metrics(people, ("gender",))
    assert by_gender["R@1"] == pytest.approx((4 * 25 + 8 * 12.5) / 12), "level with 3 men, or with 7 women"
    assert by_gender["AUC G"] == pytest.approx(50.0), "same-gender negatives: nothing left to tell them apart"
    unknown = [Person("u", voice, face), Person("v", voice, face)]
    assert label_oracle_scores(unknown).tolist() == [[0, 0], [0, 0]], "a missing label agrees with nothing"


@pytest.mark.slow
def test_evaluation_announces_how_much_it_will_count(prepared_corpus, pipeline):
    """The progress bar's total is the faces plus the lip-sync clips, so it ends exactly full."""
    from s2tf_cli.evaluation.protocol import evaluate

    totals, counted = [], []
    result = evaluate(
        pipeline, prepared_corpus, split="train", sync_clips=2, progress=counted.append, total=totals.append
    )
    assert totals == [4 + 2] and sum(counted) == 6
    from s2tf_cli.evaluation.catalog import BY_NAME

    assert len(result.people) == result.figures["people"] == 4  # a typed result: no private keys in the figures
    assert not [k for k in result.figures if k.startswith("_") or k not in BY_NAME]
    assert result.per_person and all(len(v[0]) == 4 for v in result.per_person.values())


def test_paired_rows_compare_each_later_model_with_the_first_on_the_same_people():
    from s2tf_cli.cli.eval import DIFF_ROW, paired_rows

    people = ["p0", "p1", "p2", "p3"]
    hits = lambda *v: (np.array(v, float), None)  # noqa: E731
    per_person = {
        "A": (
            people,
            {"R@5": hits(0, 0, 100, 100), "AUC rand": (np.array([50.0, 100, 0, 50]), np.array([3, 3, 3, 1]))},
        ),
        "B": (
            people,
            {"R@5": hits(100, 0, 100, 100), "AUC rand": (np.array([50.0, 100, 100, 50]), np.array([3, 3, 3, 1]))},
        ),
        "C": (people[::-1], {"R@5": hits(100, 100, 100, 100)}),  # other people (order): not paired
    }
    rows = paired_rows(per_person)
    assert list(rows) == [f"{DIFF_ROW} B − A"]
    row = rows[f"{DIFF_ROW} B − A"]
    assert row["people"] == 4 and row["R@5"] == 25.0 and row["R@5 ±"] > 0
    assert row["AUC rand"] == 30.0, "the trial-weighted mean of the per-voice differences (300 / 10)"
    assert paired_rows({"A": per_person["A"]}) == {}


def _face_score_fixture(prepared_corpus, tmp_path, with_scores: bool = True):
    """The tiny corpus with two identities moved to test, and a raw tree holding each one's face scores."""
    import shutil

    data = shutil.copytree(prepared_corpus, tmp_path / "data")
    rows = [json.loads(line) for line in (data / "manifest.jsonl").read_text().splitlines() if line.strip()]
    names = sorted({r["identity"] for r in rows})
    for r in rows:
        r["split"] = "test" if r["identity"] in names[-2:] else "train"
    (data / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    raw = tmp_path / "raw"
    rng = np.random.default_rng(0)
    for name in names:
        (raw / name).mkdir(parents=True)
        meta = {"pitch": 120.0, **({"face_z": rng.normal(size=4).round(3).tolist()} if with_scores else {})}
        (raw / name / "voice.json").write_text(json.dumps(meta))
    return data, raw, names


@pytest.mark.slow
def test_eval_face_score_probe_adds_both_identity_spaces(prepared_corpus, tiny_weights, tmp_path):
    data, raw, names = _face_score_fixture(prepared_corpus, tmp_path)
    out = tmp_path / "eval.json"
    result = runner.invoke(app, ["eval", str(data), "-w", str(tiny_weights), "--face-scores", str(raw),
                                 "--sync-clips", "2", "--no-label-oracle", "--json", str(out)])  # fmt: skip
    assert result.exit_code == 0, result.output
    (row,) = json.loads(out.read_text()).values()
    assert row["face-score probe people"] == f"{len(names) - 2} fit / 2 scored"
    for space in ("f_id^v", "f_id^a"):
        by_direction = row[f"{space} face-score R2 by direction"]
        assert list(by_direction) == ["pitch", "tract", "tilt", "rate"]
        assert all(v <= 1.0 for v in by_direction.values())
        assert row[f"{space} face-score R2"] == pytest.approx(np.mean(list(by_direction.values())))
    assert "f_id^v face-score R2" in result.output


def test_eval_face_score_probe_refuses_a_tree_without_scores(prepared_corpus, tiny_weights, tmp_path):
    data, raw, _ = _face_score_fixture(prepared_corpus, tmp_path, with_scores=False)
    result = runner.invoke(app, ["eval", str(data), "-w", str(tiny_weights), "--face-scores", str(raw)])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert f"{raw}: no <identity>/voice.json with face scores" in " ".join(result.output.split())


def test_face_score_r2_sees_a_linear_tie_and_not_noise():
    from s2tf_cli.evaluation.face_voice import per_direction_r2

    rng = np.random.default_rng(1)
    x = rng.normal(size=(300, 16))
    tied = x[:, :4] @ rng.normal(size=(4, 4))
    noise = rng.normal(size=(300, 4))
    assert min(per_direction_r2(x[:200], tied[:200], x[200:], tied[200:], ridge=1e-3)) > 0.99
    assert max(per_direction_r2(x[:200], noise[:200], x[200:], noise[200:])) < 0.1


def test_unseen_reconstruction_scores_a_perfect_and_a_blank_autoencoder(prepared_corpus, tiny_weights, monkeypatch):
    """The autoencoder columns on known answers: G returning the very face it encoded gives cosine 1 and
    L1 0; G returning mid-grey gives the faces' mean distance from grey."""
    import torch

    from s2tf_cli.evaluation.protocol import corpus_people, reconstruction_metrics
    from s2tf_cli.judges.embedder import FaceEmbedder
    from s2tf_cli.pipeline import S2TF

    s2tf = S2TF.from_pretrained(str(tiny_weights), device="cpu")
    people = corpus_people(prepared_corpus, "train")[:3]
    embedder = FaceEmbedder()
    e_real = embedder.embed_many([p.face for p in people])
    monkeypatch.setattr(s2tf, "_encode_images", lambda crops: (torch.stack([
        torch.from_numpy(c.astype(np.float32) / 127.5 - 1).permute(2, 0, 1) for c in crops]),) * 2)  # fmt: skip
    monkeypatch.setattr(s2tf.model, "generate", lambda f_id, f_ir, noise=None: f_ir)
    same = reconstruction_metrics(s2tf, people, embedder, e_real)
    assert same["unseen recon cosine"] == pytest.approx(1.0, abs=1e-4) and same["unseen recon L1"] < 0.6
    monkeypatch.setattr(s2tf.model, "generate", lambda f_id, f_ir, noise=None: torch.zeros_like(f_ir))
    grey = reconstruction_metrics(s2tf, people, embedder, e_real)
    expected = np.mean([np.abs(p.face.astype(np.float32) - 127.5).mean() for p in people])
    assert grey["unseen recon L1"] == pytest.approx(expected, abs=1.0) and grey["unseen recon cosine"] < 0.99
