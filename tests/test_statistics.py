"""Paired differences, cluster bootstrap intervals, seeds and verdicts (dmtnn.statistics)."""

import numpy as np
import pytest

from dmtnn.metrics import mae, r2_score
from dmtnn.statistics import (
    MIN_BCA_CLUSTERS,
    VERDICTS,
    fit_status,
    paired_difference,
    score_interval,
    seed_interval,
    seed_scores,
    summarize_seeds,
    time_verdict,
    verdict,
)

N = 500  # resamples: enough for these checks, and fast


def clustered(n_clusters=12, size=8, *, shift=0.2, between=0.1, within=0.02, seed=0):
    """Targets and two models whose absolute errors are positive, so that the MAE is the
    mean error and the MAE difference is ``mean(err_a - err_b)``: ``shift`` on average, plus
    an effect shared by each cluster (sd ``between``) and noise per image (sd ``within``)."""
    rng = np.random.default_rng(seed)
    clusters = np.repeat(np.arange(n_clusters), size)
    t = rng.normal(size=clusters.size)
    err_b = 0.5 + rng.uniform(0, 0.1, clusters.size)
    gap = shift + rng.normal(0, between, n_clusters)[clusters] + rng.normal(0, within,
                                                                            clusters.size)
    return t, t + err_b + gap, t + err_b, clusters


def test_pooled_clusters_by_hand():
    # two clusters: A = 1 image with |error| 1, B = 3 images with |error| 3; b is exact.
    # Resamples {A, A}, {A, B}, {B, B} (probabilities 1/4, 1/2, 1/4) pool to MAE 1, (1 + 9) / 4
    # = 2.5 and 3: the 95 % percentile interval is [1, 3], the central 40 % only {A, B}
    t = np.zeros(4)
    a, clusters = np.array([1.0, 3.0, 3.0, 3.0]), np.array(["A", "B", "B", "B"])
    d = paired_difference(mae, a, t, t, clusters, n_resamples=N)
    assert d.value == pytest.approx(2.5) and (d.low, d.high) == (1.0, 3.0)
    assert (d.n_clusters, d.n_samples, d.left_out) == (2, 4, 0)
    mid = paired_difference(mae, a, t, t, clusters, n_resamples=N, level=0.4)
    assert (mid.low, mid.high) == (2.5, 2.5)  # pooled images, not the mean of cluster means (2)


def test_known_difference_lies_in_the_interval():
    t, a, b, clusters = clustered()
    d = paired_difference(mae, a, b, t, clusters, n_resamples=N)
    assert d.value == pytest.approx(np.mean(a - b))  # positive errors: MAE difference by hand
    assert d.method == "BCa" and d.note == ""
    assert d.low < 0.2 < d.high  # the population difference
    assert d.a.values == (pytest.approx(mae(a, t)),) and d.b.values == (pytest.approx(mae(b, t)),)


def test_cluster_interval_is_wider_than_the_image_interval_for_correlated_images():
    t, a, b, clusters = clustered(between=0.1, within=0.01)
    images = np.arange(len(t))
    wide = paired_difference(mae, a, b, t, clusters, n_resamples=N)
    naive = paired_difference(mae, a, b, t, images, n_resamples=N)
    assert wide.value == naive.value
    assert wide.width > 2 * naive.width  # 8 near-copies per cluster: about sqrt(8) wider
    assert not naive.low < 0.2 < naive.high  # the image bootstrap misses the true difference
    # independent images (no cluster effect): both intervals alike
    t, a, b, clusters = clustered(between=0.0, within=0.1)
    ratio = (paired_difference(mae, a, b, t, clusters, n_resamples=N).width
             / paired_difference(mae, a, b, t, images, n_resamples=N).width)
    assert 0.6 < ratio < 1.6


def test_identical_predictions_give_a_zero_interval_at_zero():
    t, a, _, clusters = clustered()
    d = paired_difference(r2_score, a, a, t, clusters, n_resamples=N)
    assert (d.value, d.low, d.high) == (0.0, 0.0, 0.0)
    assert d.method == "percentile" and "same value" in d.note  # BCa is undefined there
    assert verdict(d, higher_is_better=True) == "not separable"


def test_better_worse_and_under_fit_verdicts():
    rng = np.random.default_rng(3)
    clusters = np.repeat(np.arange(10), 6)
    t = rng.normal(size=60)
    good, bad = t + rng.normal(0, 0.1, 60), t + rng.normal(0, 0.8, 60)
    r2 = paired_difference(r2_score, good, bad, t, clusters, n_resamples=N)
    assert r2.low > 0 and verdict(r2, higher_is_better=True) == "supported"
    worse = paired_difference(r2_score, bad, good, t, clusters, n_resamples=N)
    assert worse.high < 0 and verdict(worse, higher_is_better=True) == "contradicted"
    err = paired_difference(mae, good, bad, t, clusters, n_resamples=N)
    assert err.high < 0 and verdict(err, higher_is_better=False) == "supported"
    assert verdict(worse, higher_is_better=True, train_scores=[0.95, [0.9, 0.7]]) == VERDICTS[1]
    # a network of the claim does not fit its training data: no verdict on the architecture
    for train in ([0.95, 0.5], {"a": 0.95, "b": [0.9, 0.6]}, 0.79, [float("nan")]):
        assert verdict(r2, higher_is_better=True, train_scores=train) == "not decided: under-fit"
    assert verdict(r2, higher_is_better=True, train_scores=[0.8, [0.85, 0.95]]) == "supported"


def test_seeds_that_disagree_with_the_interval_leave_the_claim_open():
    """The interval resamples slabs with the seeds averaged: it can exclude 0 while one
    seed of a is worse than its pair; the verdict then waits for the seeds to agree."""
    rng = np.random.default_rng(5)
    clusters = np.repeat(np.arange(12), 5)
    t = rng.normal(size=60)
    noise = rng.normal(size=(3, 60))
    # a: seeds 0 and 1 much better than b, seed 2 a little worse; b: all seeds middling
    a = t + np.array([[0.05], [0.05], [0.65]]) * noise
    b = t + 0.55 * rng.normal(size=(3, 60))
    d = paired_difference(r2_score, a, b, t, clusters, n_resamples=N)
    assert d.low > 0, "the mean over seeds separates"
    assert min(d.seeds.values) < 0 < max(d.seeds.values), "but one seed pair goes the other way"
    assert verdict(d, higher_is_better=True) == "not separable"
    assert verdict(d, higher_is_better=True, seed_differences=[0.15, 0.16]) == "supported"
    # the first two seeds both lie on the interval's side (+0.24, +0.34), but two seeds that
    # far apart do not separate from 0: Student's t with one degree of freedom
    two = paired_difference(r2_score, a[:2], b[:2], t, clusters, n_resamples=N)
    assert two.low > 0 and min(two.seeds.values) > 0
    low, high = seed_interval(two.seeds.values)
    mean, spread = np.mean(two.seeds.values), np.std(two.seeds.values, ddof=1)
    assert (low, high) == pytest.approx((mean - 12.706 * spread / np.sqrt(2),
                                         mean + 12.706 * spread / np.sqrt(2)), rel=1e-4)
    assert low < 0 and verdict(two, higher_is_better=True) == "not separable"
    # a seed interval given (e.g. moved by a margin) replaces the one of the values
    assert verdict(two, higher_is_better=True, seed_bounds=(0.1, 0.5)) == "supported"
    # one seed: nothing to compare with; NaN seeds are not counted
    assert verdict(two, higher_is_better=True, seed_differences=[-0.3]) == "supported"
    assert verdict(two, higher_is_better=True, seed_differences=[0.2, np.nan]) == "supported"


def test_fit_status_uses_the_mean_over_seeds():
    assert fit_status(0.8) == "fits" and fit_status(0.7999) == "under-fit"
    assert fit_status([0.9, 0.75]) == "fits" and fit_status([0.9, 0.6]) == "under-fit"
    assert fit_status(0.5, threshold=0.4) == "fits"
    assert fit_status(float("nan")) == "under-fit"
    with pytest.raises(ValueError, match="train_r2"):
        fit_status(np.ones((2, 2)))


def test_bca_falls_back_to_percentile_with_few_clusters():
    rng = np.random.default_rng(5)
    t = rng.normal(size=24)
    a, b = t + rng.normal(0, 0.3, 24), t + rng.normal(0, 0.5, 24)
    for k in (2, 3):
        d = paired_difference(r2_score, a, b, t, np.arange(24) % k, n_resamples=N)
        assert d.method == "percentile" and d.n_clusters == k
        assert f"{k} clusters" in d.note and str(MIN_BCA_CLUSTERS) in d.note
        assert d.low <= d.high
    d = paired_difference(r2_score, a, b, t, np.arange(24) % 6, n_resamples=N)
    assert d.method == "BCa" and d.note == ""
    asked = paired_difference(r2_score, a, b, t, np.arange(24) % 3, n_resamples=N,
                              method="percentile")
    assert asked.method == "percentile" and asked.note == ""  # asked for: nothing to explain
    one = paired_difference(r2_score, a, b, t, np.zeros(24), n_resamples=N)
    assert one.method == "none" and np.isnan(one.low) and np.isnan(one.high)
    assert verdict(one, higher_is_better=True) == "not separable"


def test_same_seed_same_interval():
    t, a, b, clusters = clustered()
    def run(seed):
        d = paired_difference(r2_score, a, b, t, clusters, n_resamples=N, seed=seed)
        return d.value, d.low, d.high, d.method

    first = run(7)
    assert run(7) == first  # bit for bit
    other = run(8)
    assert other[0] == first[0] and other[1:3] != first[1:3]


def test_seeds_are_averaged_inside_the_statistic_and_summarised_apart():
    t, a, b, clusters = clustered()
    a2 = np.stack([a, a + 0.1])  # the second seed of a: every error 0.1 larger
    b2 = np.stack([b, b + 0.3])
    d = paired_difference(mae, a2, b2, t, clusters, n_resamples=N)
    per = [mae(a, t) - mae(b, t), mae(a + 0.1, t) - mae(b + 0.3, t)]
    assert d.seeds.values == pytest.approx(per) and d.value == pytest.approx(np.mean(per))
    assert d.seeds.std == pytest.approx(0.2 / np.sqrt(2))  # differences 0.2 apart
    assert d.n_seeds == 2
    assert d.a.values == pytest.approx([mae(a, t), mae(a, t) + 0.1])
    # the seed shift is constant on every resample: the interval is one seed's, moved by -0.1
    one = paired_difference(mae, a, b, t, clusters, n_resamples=N)
    assert (d.low, d.high) == pytest.approx((one.low - 0.1, one.high - 0.1))
    # one row pairs with every seed; other seed counts are refused
    base = paired_difference(mae, a2, b, t, clusters, n_resamples=N)
    assert base.seeds.values == pytest.approx([mae(a, t) - mae(b, t), mae(a, t) + 0.1 - mae(b, t)])
    with pytest.raises(ValueError, match="paired by index"):
        paired_difference(mae, a2, np.stack([b, b, b]), t, clusters)


def test_nan_predictions_are_left_out_of_both_models():
    t, a, b, clusters = clustered()
    a2 = np.stack([a, a])
    a2[1, 5] = np.nan  # one seed's prediction of image 5
    d = paired_difference(mae, a2, b, t, clusters, n_resamples=N)
    keep = np.arange(len(t)) != 5
    assert d.left_out == 1 and d.n_samples == len(t) - 1
    assert d.value == pytest.approx(mae(a[keep], t[keep]) - mae(b[keep], t[keep]))
    with pytest.raises(ValueError, match="one cluster id"):
        paired_difference(mae, a, b, t, clusters[:-1])
    with pytest.raises(ValueError, match="pred_b must have shape"):
        paired_difference(mae, a, b[:-1], t, clusters)
    with pytest.raises(ValueError, match="method must be"):
        paired_difference(mae, a, b, t, clusters, method="studentized")


def test_score_interval_of_one_model_and_seed_summaries():
    t, a, _, clusters = clustered()
    iv = score_interval(mae, np.stack([a, a + 0.2]), t, clusters, n_resamples=N)
    assert iv.value == pytest.approx(mae(a, t) + 0.1) and iv.low < iv.value < iv.high
    assert iv.seeds.values == pytest.approx([mae(a, t), mae(a, t) + 0.2])
    np.testing.assert_allclose(seed_scores(mae, np.stack([a, a + 0.2]), t),
                               [mae(a, t), mae(a, t) + 0.2])
    s = summarize_seeds([1.0, 2.0, 4.0])
    assert (s.mean, s.std) == (pytest.approx(7 / 3), pytest.approx(np.std([1, 2, 4], ddof=1)))
    assert np.isnan(summarize_seeds([0.5]).std)


def test_relative_difference_is_a_ratio_per_resample():
    """(a - b) / b: the value, each seed's, and an interval that moves with b's score."""
    rng = np.random.default_rng(6)
    clusters = np.repeat(np.arange(10), 4)
    t = rng.normal(size=40)
    a = t + rng.normal(0, 0.5, (2, 40))
    b = t + rng.normal(0, 1.0, (2, 40))
    d = paired_difference(mae, a, b, t, clusters, n_resamples=N, relative=True)
    sa, sb = [np.array([mae(q, t) for q in p]) for p in (a, b)]
    assert d.value == pytest.approx((sa.mean() - sb.mean()) / sb.mean())
    assert d.seeds.values == pytest.approx(tuple((sa - sb) / sb))
    assert d.low < d.value < d.high < 0
    plain = paired_difference(mae, a, b, t, clusters, n_resamples=N)
    assert plain.value / sb.mean() == pytest.approx(d.value)
    # a constant shift of both errors' scale leaves the ratio, not the difference
    scaled = paired_difference(mae, 3 * a, 3 * b, 3 * t, clusters, n_resamples=N, relative=True)
    assert (scaled.value, scaled.low, scaled.high) == pytest.approx((d.value, d.low, d.high))


def test_time_verdict_takes_a_side_only_beyond_the_margin():
    """FEM 233 s against a 200 s training (quick, one thread) and 169 s against 184 s (two
    threads) took opposite sides under "the longer wins"; within a factor 2 neither does."""
    assert time_verdict(233.0, 200.0) == time_verdict(169.0, 184.0) == "not separable"
    assert time_verdict(401.0, 200.0) == "supported"
    assert time_verdict(99.0, 200.0) == "contradicted"
    assert time_verdict(300.0, 200.0, margin=1.2) == "supported"
    assert time_verdict(400.0, 200.0) == "not separable"  # exactly twice is not beyond it
    for bad in ((0.0, 1.0, 2.0), (1.0, -1.0, 2.0), (1.0, 1.0, 0.5)):
        with pytest.raises(ValueError, match="times must be positive and margin >= 1"):
            time_verdict(*bad)
