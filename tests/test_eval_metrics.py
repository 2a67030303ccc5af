"""Metric definitions on cases with known answers (issue 4's contract)."""

import numpy as np
import pytest

from s2tf_cli.evaluation import metrics as M
from s2tf_cli.judges.landmarks import mouth_opening


def test_identical_embeddings_give_cosine_one_and_l1_zero():
    x = np.random.default_rng(0).standard_normal((5, 16))
    assert np.allclose(M.cosine(x, x), 1.0)
    assert np.allclose(M.l1(x, x), 0.0)
    assert np.allclose(M.cosine(x, -x), -1.0)


def test_perfect_ranker_gives_recall_100_and_reversed_gives_0():
    g = np.eye(20)
    assert M.recall_at(M.similarity_matrix(g, g), range(20)) == {1: 100.0, 5: 100.0, 10: 100.0}
    worst = -M.similarity_matrix(g, g)
    assert M.recall_at(worst, range(20), ks=(1, 19, 20)) == {1: 0.0, 19: 0.0, 20: 100.0}


def test_ranks_count_ties_against_the_query():
    scores = np.array([[0.5, 0.5, 0.1], [0.2, 0.9, 0.9]])
    assert M.ranks(scores, [0, 1]).tolist() == [2, 2]


def test_expected_recall_breaks_ties_at_random():
    """Distinct scores: the plain recall. All level: k/n exactly. Ten of each gender and a ranker that
    knows only gender: the true face is one of 10 level candidates."""
    g = np.eye(20)
    assert M.expected_recall_at(g, range(20)) == M.recall_at(g, range(20)) == {1: 100.0, 5: 100.0, 10: 100.0}
    assert M.expected_recall_at(np.zeros((20, 20)), range(20), ks=(1, 5, 20)) == pytest.approx(
        {1: 5.0, 5: 25.0, 20: 100.0}
    )
    gender = np.repeat([0, 1], 10)
    same = (gender[:, None] == gender[None, :]).astype(float)
    assert M.expected_recall_at(same, range(20), ks=(1, 5, 10, 11)) == pytest.approx(
        {1: 10.0, 5: 50.0, 10: 100.0, 11: 100.0}
    )
    assert M.recall_at(same, range(20), ks=(5, 10)) == {5: 0.0, 10: 100.0}, "ties against the query"


def test_random_ranker_recall_is_near_k_over_n():
    rng = np.random.default_rng(1)
    scores = rng.standard_normal((4000, 100))
    r = M.recall_at(scores, rng.integers(0, 100, 4000), ks=(1, 10))
    assert r[1] == pytest.approx(1.0, abs=0.6) and r[10] == pytest.approx(10.0, abs=1.5)


def test_matching_auc_enumerates_every_allowed_trial():
    scores = np.array([[0.9, 0.1, 0.5], [0.2, 0.3, 0.3], [0.8, 0.0, 0.7]])
    everyone = np.ones((3, 3), bool)
    # voice 0 beats both; voice 1 beats 0, ties 2; voice 2 loses to 0, beats 1: (2 + 1.5 + 1) / 6
    assert M.matching_auc(scores, everyone) == (pytest.approx(100 * 4.5 / 6), 6)
    assert M.matching_auc(scores, np.eye(3, dtype=bool)) == (pytest.approx(float("nan"), nan_ok=True), 0)
    only = np.zeros((3, 3), bool)
    only[2, 0] = True
    assert M.matching_auc(scores, only) == (0.0, 1)
    assert M.matching_auc(np.eye(50) + 0.1, np.ones((50, 50), bool))[0] == 100.0  # a perfect matcher
    rng = np.random.default_rng(4)
    auc, trials = M.matching_auc(rng.standard_normal((80, 80)), np.ones((80, 80), bool))
    assert trials == 80 * 79 and auc == pytest.approx(50.0, abs=3.0)  # shuffled pairing: chance


def test_matching_trials_per_voice_add_up_to_the_auc():
    scores = np.array([[0.9, 0.1, 0.5], [0.2, 0.3, 0.3], [0.8, 0.0, 0.7]])
    rates, counts = M.matching_trials(scores, np.ones((3, 3), bool))
    assert rates.tolist() == [100.0, 75.0, 50.0] and counts.tolist() == [2, 2, 2]
    rates, counts = M.matching_trials(scores, np.eye(3, dtype=bool))
    assert np.isnan(rates).all() and counts.sum() == 0


def test_bootstrap_se_is_the_sampling_error_of_a_mean_over_people():
    assert M.bootstrap_se([70.0] * 50) == 0.0
    coin = np.array([0.0, 100.0] * 50)  # a 50 % rate over 100 people: binomial SE 5 points
    assert M.bootstrap_se(coin) == pytest.approx(5.0, abs=0.6)
    assert M.bootstrap_se(coin, draws=200, seed=1) != M.bootstrap_se(coin, draws=200, seed=2)
    # weights: people with more trials count more, people without trials (NaN, weight 0) not at all
    assert M.bootstrap_se([50.0, 50.0, float("nan")], [3, 1, 0]) == 0.0
    assert np.isnan(M.bootstrap_se([1.0]))


def test_paired_difference_is_b_minus_a_with_the_people_resampled_together():
    rng = np.random.default_rng(0)
    a = 100.0 * (rng.random(200) < 0.3)
    assert M.paired_difference(a, a) == (0.0, 0.0), "one model against itself: no difference, no doubt"
    b = a.copy()
    b[np.flatnonzero(a == 0)[:20]] = 100.0  # B finds 20 people A misses, and everyone A finds
    diff, se = M.paired_difference(a, b)
    assert diff == pytest.approx(10.0)
    # the same two rows judged apart: sqrt(se_a^2 + se_b^2) = 4.7 points; paired: ~2.1
    assert se == pytest.approx(np.sqrt(0.1 * 0.9 / 200) * 100, abs=0.5)
    assert se < 0.5 * np.hypot(M.bootstrap_se(a), M.bootstrap_se(b))
    # weights (trials per voice) and NaN (no label) as in bootstrap_se
    assert M.paired_difference([50.0, 0.0, float("nan")], [100.0, 0.0, 20.0], [3, 1, 5]) == (
        37.5,
        pytest.approx(M.bootstrap_se([50.0, 0.0, float("nan")], [3, 1, 5])),
    )
    assert np.isnan(M.paired_difference([float("nan")], [1.0])[0])


def test_kid_is_zero_in_expectation_for_one_distribution_and_grows_with_shift():
    rng = np.random.default_rng(3)
    a, b = rng.standard_normal((400, 8)), rng.standard_normal((400, 8))
    assert abs(M.kid(a, b)) < 0.05
    assert M.kid(a, b + 1.0) > 10 * abs(M.kid(a, b))


def test_landmark_distance_in_pixels():
    p = np.zeros((3, 20, 2))
    assert M.landmark_distance(p, p + [3.0, 4.0]) == pytest.approx(5.0)


def test_best_offset_and_confidence():
    off, conf = M.best_offset({-2: 0.1, -1: 0.2, 0: 0.9, 1: 0.2, 2: 0.1})
    assert off == 0 and conf == pytest.approx(0.7)


def test_independent_judges_on_real_faces(pose_image):
    """The embedder separates people and the attribute classifier reads a face; both accept small crops."""
    from s2tf_cli.images import load_image, resize
    from s2tf_cli.judges.attributes import AttributeClassifier, age_group
    from s2tf_cli.judges.embedder import FaceEmbedder

    face = load_image(pose_image)
    emb = FaceEmbedder()
    small, big = resize(face, 96), resize(face, 224)
    e = emb.embed_many([small, big, np.ascontiguousarray(big[:, ::-1])])
    assert e.shape == (3, 128)
    assert np.linalg.norm(e[0] - e[1]) < 0.45, "one face at two sizes is one person"
    assert emb.calls == 3
    attrs = AttributeClassifier()(small)
    assert attrs.gender in ("male", "female") and 0 < attrs.age < 100 and attrs.detected
    assert age_group(25) == "18-29" and age_group(70) == "60+" and age_group(None) is None


def test_heldout_r2_is_one_for_a_linear_target_and_about_zero_for_noise():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((400, 5))
    y = x @ np.array([1.0, -2.0, 0.5, 0.0, 3.0]) + 2.0
    assert M.heldout_r2(x[:200], y[:200], x[200:], y[200:], ridge=1e-6) > 0.9999
    noise = rng.standard_normal(400)
    assert abs(M.heldout_r2(x[:200], noise[:200], x[200:], noise[200:])) < 0.1


def _mouth(gap: float, width: float = 40.0) -> np.ndarray:
    """68 landmarks with only the mouth placed: corners 48/54 `width` apart, inner lips `gap` apart."""
    p = np.zeros((68, 2))
    p[48], p[54] = (0, 0), (width, 0)
    for top, bottom, x in ((61, 67, 10), (62, 66, 20), (63, 65, 30)):
        p[top], p[bottom] = (x, -gap / 2), (x, gap / 2)
    return p


def test_mouth_opening_is_gap_over_width_at_any_scale():
    assert mouth_opening(_mouth(0.0)) == 0.0
    assert mouth_opening(_mouth(10.0)) == pytest.approx(0.25)
    assert mouth_opening(_mouth(10.0) * 3) == pytest.approx(0.25)  # a larger face, the same opening


def test_frame_loudness_and_correlation():
    wave = np.concatenate([np.zeros(100), np.full(100, 0.5), np.full(100, -0.25)])
    np.testing.assert_allclose(M.frame_loudness(wave, 3), [0.0, 0.5, 0.25])
    x = np.arange(10.0)
    assert M.correlation(x, 2 * x + 1) == pytest.approx(1.0)
    assert M.correlation(x, -x) == pytest.approx(-1.0)
    y = 2 * x
    y[[1, 3]] = np.nan  # frames without landmarks are left out
    assert M.correlation(x, y) == pytest.approx(1.0)
    assert np.isnan(M.correlation(x[:4], x[:4])) and np.isnan(M.correlation(x, np.ones(10)))


def test_mouth_plot_draws_both_series_with_gaps():
    from s2tf_cli.evaluation.figures import mouth_plot

    opening = np.array([0.0, 0.2, np.nan, np.nan, 0.4, 0.1, 0.3])
    img = mouth_plot(opening, np.linspace(0, 1, 7), width=200, height=80)
    assert img.shape == (80, 200, 3) and img.dtype == np.uint8
    red = (img[..., 0] > 180) & (img[..., 2] < 100)
    blue = (img[..., 2] > 180) & (img[..., 0] < 100)
    assert red.sum() > 20 and blue.sum() > 20
    gap = slice(int(200 * 2.3 / 6), int(200 * 2.7 / 6))  # no red line where there are no landmarks
    assert not red[:, gap].any()


def test_judge_on_real_faces_scores_sharp_and_blurred_photos():
    """A judge that calls soft faces women: full marks on the sharp photos, none for the blurred men."""
    import cv2

    from s2tf_cli.evaluation.protocol import Person, judge_on_real_faces
    from s2tf_cli.judges.attributes import Attributes

    def judge(image):
        sharp = cv2.Laplacian(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY), cv2.CV_64F).var() > 500
        return Attributes("male" if sharp else "female", 90.0, 30.0, True)

    rng = np.random.default_rng(0)
    people = [Person(f"p{i}", np.zeros(16000, np.float32), rng.integers(0, 256, (128, 128, 3), dtype=np.uint8),
                     gender=g) for i, g in enumerate(["male", "male", "unknown"])]  # fmt: skip
    out = judge_on_real_faces(judge, people)
    assert out == {"judge gender % real faces": 100.0, "judge gender % blurred real faces": 0.0}
    assert judge_on_real_faces(judge, people[2:])["judge gender % real faces"] != 0.0  # NaN: nobody labelled


def test_quiet_and_loud_openings_follow_the_loudness_quantiles():
    from s2tf_cli.evaluation.protocol import quiet_loud_openings

    loudness = np.arange(20, dtype=float)  # frames 0-2 are the quietest 15 %, 12-19 the loudest 40 %
    openings = np.where(loudness >= 12, 0.4, 0.05)
    openings[0] = np.nan  # a frame without a face is skipped, not counted as closed
    quiet, loud = quiet_loud_openings(openings, loudness)
    assert quiet == pytest.approx(0.05) and loud == pytest.approx(0.4)
    assert (
        quiet_loud_openings(np.full(20, np.nan), loudness)[0] != quiet_loud_openings(np.full(20, np.nan), loudness)[0]
    )
