import numpy as np
import pytest

from dmtnn.metrics import (
    HIGHER_IS_BETTER,
    REGRESSION_SCORES,
    bootstrap_ci,
    mae,
    mse,
    pixel_accuracy,
    pore_dice,
    pore_iou,
    porosity_error,
    r2_score,
    regression_scores,
    relative_error,
    rmse,
    segmentation_scores,
)
from dmtnn.morphology import porosity

# A 2 x 3 label with 2 pore pixels (0) and a prediction that finds one of them
# and adds one false pore:
#   label      pred
#   0 1 1      0 0 1
#   1 0 1      1 1 1
LABEL = np.array([[0, 1, 1], [1, 0, 1]])
PRED = np.array([[0, 0, 1], [1, 1, 1]])


def test_segmentation_scores_by_hand():
    # PA: 4 of 6 pixels agree; pore sets P = {(0,0), (0,1)}, T = {(0,0), (1,1)}
    assert pixel_accuracy(PRED, LABEL) == pytest.approx(4 / 6)
    assert pore_iou(PRED, LABEL) == pytest.approx(1 / 3)  # |P&T| = 1, |P|T| = 3
    assert pore_dice(PRED, LABEL) == pytest.approx(2 * 1 / 4)  # 2|P&T| / (|P| + |T|)
    assert porosity(LABEL) == pytest.approx(2 / 6)
    assert porosity_error(PRED, LABEL) == pytest.approx(0.0)  # same pore count
    scores = segmentation_scores(PRED, LABEL)
    assert scores == {"PA": pytest.approx(4 / 6), "pore IoU": pytest.approx(1 / 3),
                      "pore Dice": pytest.approx(0.5), "porosity error": pytest.approx(0.0)}


def test_all_grain_prediction_scores_the_floor():
    # predicting grain everywhere: PA = 1 - porosity, no pore found
    ones = np.ones_like(LABEL)
    assert pixel_accuracy(ones, LABEL) == pytest.approx(1 - porosity(LABEL))
    assert pore_iou(ones, LABEL) == 0.0
    assert pore_dice(ones, LABEL) == 0.0
    assert porosity_error(ones, LABEL) == pytest.approx(-2 / 6)


def test_maps_without_pores_agree_perfectly():
    ones = np.ones((2, 2), int)
    assert pore_iou(ones, ones) == 1.0
    assert pore_dice(ones, ones) == 1.0


def test_per_image_scores_of_a_stack():
    stack_p, stack_t = np.stack([PRED, LABEL]), np.stack([LABEL, LABEL])
    np.testing.assert_allclose(pixel_accuracy(stack_p, stack_t, per_image=True), [4 / 6, 1])
    np.testing.assert_allclose(pore_iou(stack_p, stack_t, per_image=True), [1 / 3, 1])
    np.testing.assert_allclose(porosity(stack_t, axis=(1, 2)), [1 / 3, 1 / 3])
    # pooled over the stack: 10 of 12 pixels agree
    assert pixel_accuracy(stack_p, stack_t) == pytest.approx(10 / 12)
    with pytest.raises(ValueError, match="per_image needs a stack"):
        pixel_accuracy(PRED, LABEL, per_image=True)


def test_segmentation_input_errors():
    with pytest.raises(ValueError, match="shapes differ"):
        pixel_accuracy(PRED, LABEL[:1])
    with pytest.raises(ValueError, match="pred is not a binary map"):
        pore_iou(PRED * 2, LABEL)
    with pytest.raises(ValueError, match="empty"):
        pixel_accuracy(np.zeros(0), np.zeros(0))


def test_r2_by_hand_and_degenerate_cases():
    t = np.array([1.0, 2.0, 4.0])  # mean 7/3, SS_tot = 14/3
    p = np.array([1.0, 2.0, 3.0])  # SS_res = 1
    assert r2_score(p, t) == pytest.approx(1 - 1 / (14 / 3))
    assert r2_score(t, t) == 1.0
    assert r2_score(np.full(3, t.mean()), t) == pytest.approx(0.0)  # constant regression
    assert r2_score(-t, t) < 0  # worse than the mean: negative
    assert np.isnan(r2_score(p, np.ones(3)))  # constant target: undefined


def test_errors_by_hand():
    p, t = np.array([1.1, 1.8, 3.0]), np.array([1.0, 2.0, 3.0])
    assert mse(p, t) == pytest.approx((0.01 + 0.04) / 3)
    assert mae(p, t) == pytest.approx(0.3 / 3)
    assert relative_error(p, t) == pytest.approx((0.1 + 0.1 + 0) / 3)
    scores = regression_scores(p, t)
    assert set(scores) == {"R2", "MSE", "MAE", "relative error"}
    with pytest.raises(ValueError, match="1 target value"):
        relative_error(p, np.array([1.0, 0.0, 3.0]))


def test_rmse_by_hand():
    assert rmse([1.0, 2.0, 5.0], [1.0, 2.0, 2.0]) == pytest.approx(np.sqrt(9 / 3))
    assert set(REGRESSION_SCORES) == set(HIGHER_IS_BETTER)
    assert [k for k, v in HIGHER_IS_BETTER.items() if v] == ["R2"]


def test_bootstrap_interval_contains_the_score_and_narrows_with_more_images():
    rng = np.random.default_rng(1)
    t = rng.normal(size=400)
    p = t + rng.normal(scale=0.5, size=400)
    value, low, high = bootstrap_ci(r2_score, p, t, n_boot=500)
    assert low < value < high and value == r2_score(p, t)
    _, low20, high20 = bootstrap_ci(r2_score, p[:20], t[:20], n_boot=500)
    assert high20 - low20 > 2 * (high - low)  # twenty images: a much wider interval
    assert bootstrap_ci(mae, p, t, seed=3) == bootstrap_ci(mae, p, t, seed=3)
    with pytest.raises(ValueError, match="two or more"):
        bootstrap_ci(mae, p[:1], t[:1])
    value, low, high = bootstrap_ci(mae, p[:40], t[:40], clusters=np.zeros(40))
    assert value == mae(p[:40], t[:40]) and np.isnan(low) and np.isnan(high)  # one cluster


def test_bootstrap_over_clusters_of_near_copies_is_wider():
    # 10 slabs of 8 near-identical images: resampling images pretends to 80 independent ones
    rng = np.random.default_rng(2)
    slab = np.repeat(np.arange(10), 8)
    t = rng.normal(size=80)
    p = t + rng.normal(size=10)[slab] + rng.normal(scale=0.01, size=80)
    value, low, high = bootstrap_ci(mae, p, t, n_boot=500)
    same, clow, chigh = bootstrap_ci(mae, p, t, clusters=slab, n_boot=500)
    assert same == value and chigh - clow > 2 * (high - low)
