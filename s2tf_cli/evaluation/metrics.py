"""Metric definitions, as pure numpy functions so their meaning is tested on cases with known answers.

Conventions follow the paper's tables: recall and AUC in percent, higher better; L1 and LMD lower better.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity of two (N, D) embedding sets (1 = same direction)."""
    return np.sum(_unit(a) * _unit(b), axis=-1)


def l1(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise L1 distance of two (N, D) embedding sets, as the embedder gives them (0 = identical)."""
    return np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64)).sum(axis=-1)


def similarity_matrix(queries: np.ndarray, gallery: np.ndarray) -> np.ndarray:
    """(Q, G) cosine similarities."""
    return _unit(queries) @ _unit(gallery).T


def ranks(scores: np.ndarray, truth: Sequence[int]) -> np.ndarray:
    """1-based rank of the true gallery item for each query row (ties count against the query)."""
    scores = np.asarray(scores, np.float64)
    truth = np.asarray(truth)
    own = scores[np.arange(len(truth)), truth]
    return np.sum(scores >= own[:, None], axis=1)


def recall_at(scores: np.ndarray, truth: Sequence[int], ks: Sequence[int] = (1, 5, 10)) -> dict[int, float]:
    """Percentage of queries whose true item is among the top k."""
    r = ranks(scores, truth)
    return {k: float(100.0 * np.mean(r <= k)) for k in ks}


def expected_recall_at(scores: np.ndarray, truth: Sequence[int], ks: Sequence[int] = (1, 5, 10)) -> dict[int, float]:
    """`recall_at` of a ranker that breaks ties uniformly at random, in expectation: with a items
    scored above the true one and b (itself included) level with it, the true item's rank is uniform
    on a+1..a+b. For coarse scorers (a label oracle) whose ties are the rule."""
    scores = np.asarray(scores, np.float64)
    truth = np.asarray(truth)
    own = scores[np.arange(len(truth)), truth][:, None]
    above = np.sum(scores > own, axis=1)
    level = np.sum(scores == own, axis=1)
    return {k: float(100.0 * np.mean(np.clip((k - above) / level, 0.0, 1.0))) for k in ks}


def matching_trials(scores: np.ndarray, allowed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per voice i, the percentage of its 1:2 trials (own face i against face j, for each j `allowed[i, j]`
    admits) that the own face wins, ties half (NaN with no trial), and its number of trials."""
    scores = np.asarray(scores, np.float64)
    allowed = np.asarray(allowed, bool) & ~np.eye(len(scores), dtype=bool)
    own = np.diag(scores)[:, None]
    wins = np.where(allowed, (own > scores) + 0.5 * (own == scores), 0.0).sum(axis=1)
    counts = allowed.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return 100.0 * wins / counts, counts


def matching_auc(scores: np.ndarray, allowed: np.ndarray) -> tuple[float, int]:
    """1:2 matching over every trial: voice i against its own face i and one other face j, for every j
    that `allowed[i, j]` admits (a random other person, or one matched on gender/age/ethnicity). Percent
    of trials where the own face scores higher, ties half; and the number of trials. Enumerating every
    trial instead of drawing one negative per voice gives the same expectation with far less noise."""
    rates, counts = matching_trials(scores, allowed)
    trials = int(counts.sum())
    if trials == 0:
        return float("nan"), 0
    return float(np.nansum(rates * counts) / trials), trials


def bootstrap_se(values: Sequence[float], weights: Sequence[float] | None = None, draws: int = 1000,
                 seed: int = 0) -> float:  # fmt: skip
    """Standard error of a (weighted) mean over people, by resampling the people: how far the figure
    would move with another draw of as many test people. Differences within about two of these are noise."""
    values = np.asarray(values, np.float64)
    weights = np.ones_like(values) if weights is None else np.asarray(weights, np.float64)
    keep = ~np.isnan(values) & (weights > 0)
    values, weights = values[keep], weights[keep]
    if len(values) < 2:
        return float("nan")
    idx = np.random.default_rng(seed).integers(0, len(values), (draws, len(values)))
    means = (values[idx] * weights[idx]).sum(axis=1) / weights[idx].sum(axis=1)
    return float(np.std(means, ddof=1))


def paired_difference(a: Sequence[float], b: Sequence[float], weights: Sequence[float] | None = None,
                      draws: int = 1000, seed: int = 0) -> tuple[float, float]:  # fmt: skip
    """(b - a) over the same people, and its standard error with the people resampled together: tighter than
    the two models' own SEs combined by as much as they share their hits and misses on this test set."""
    diff = np.asarray(b, np.float64) - np.asarray(a, np.float64)
    weights = np.ones_like(diff) if weights is None else np.asarray(weights, np.float64)
    keep = ~np.isnan(diff) & (weights > 0)
    if not keep.any():
        return float("nan"), float("nan")
    return float(np.average(diff[keep], weights=weights[keep])), bootstrap_se(diff, weights, draws, seed)


def kid(real: np.ndarray, fake: np.ndarray) -> float:
    """Kernel Inception Distance (unbiased MMD², cubic polynomial kernel) between two feature sets,
    here in the independent face embedder's space; 0 when the sets come from one distribution."""
    x, y = np.asarray(real, np.float64), np.asarray(fake, np.float64)
    d = x.shape[1]

    def k(a, b):
        return (a @ b.T / d + 1.0) ** 3

    m, n = len(x), len(y)
    if m < 2 or n < 2:
        return float("nan")
    kxx, kyy, kxy = k(x, x), k(y, y), k(x, y)
    return float((kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
                 - 2 * kxy.mean())  # fmt: skip


def landmark_distance(pred: np.ndarray, truth: np.ndarray) -> float:
    """LMD: mean Euclidean distance between corresponding landmarks, (..., P, 2) arrays, in pixels."""
    return float(np.linalg.norm(np.asarray(pred, np.float64) - np.asarray(truth, np.float64), axis=-1).mean())


def frame_loudness(wave: np.ndarray, frames: int) -> np.ndarray:
    """RMS of the audio under each of `frames` equal spans (one per video frame)."""
    hop = len(wave) / frames
    return np.array([np.sqrt(np.mean(np.square(wave[int(i * hop) : max(int((i + 1) * hop), int(i * hop) + 1)],
                                                dtype=np.float64))) for i in range(frames)])  # fmt: skip


def correlation(x: np.ndarray, y: np.ndarray, minimum: int = 5) -> float:
    """Pearson correlation over the entries where both are finite; NaN with fewer than `minimum` of
    them or a constant series."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    ok = np.isfinite(x) & np.isfinite(y)
    if ok.sum() < minimum or x[ok].std() < 1e-12 or y[ok].std() < 1e-12:
        return float("nan")
    return float(np.corrcoef(x[ok], y[ok])[0, 1])


def best_offset(confidences: dict[int, float]) -> tuple[int, float]:
    """SyncNet-style: the audio-video offset (frames) with the highest sync score, and the confidence
    (median over offsets minus the best distance, here: best score minus the median score)."""
    offsets = sorted(confidences)
    values = np.array([confidences[o] for o in offsets])
    best = int(np.argmax(values))
    return offsets[best], float(values[best] - np.median(values))


def heldout_r2(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray,
               ridge: float = 1.0) -> float:  # fmt: skip
    """R² on held-out rows of a ridge regression y ~ x (with intercept): how much of y is linearly in x.
    1 is perfect, 0 is no better than the test mean, negative is worse."""
    xa = np.c_[x_train, np.ones(len(x_train))]
    w = np.linalg.solve(xa.T @ xa + ridge * np.eye(xa.shape[1]), xa.T @ y_train)
    pred = np.c_[x_test, np.ones(len(x_test))] @ w
    var = float(np.var(y_test))
    return float(1 - np.mean((pred - y_test) ** 2) / var) if var > 0 else float("nan")
