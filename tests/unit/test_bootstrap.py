"""The paired bootstrap returns the intervals theory gives on constructed pairs."""

import numpy as np
import pytest

from scratchlm import bootstrap, metrics


def _runs(correct_a, correct_b):
    a = np.stack([bootstrap.accuracy_counts(np.ones(len(c), int), c) for c in correct_a])
    b = np.stack([bootstrap.accuracy_counts(np.ones(len(c), int), c) for c in correct_b])
    return a, b


def test_a_known_difference_gets_the_normal_interval():
    n = 2000
    a, b = _runs([np.ones(n, int)], [np.arange(n) % 2])  # every example right against half of them
    found = bootstrap.paired(a, b, bootstrap.accuracy)
    half_width = 1.96 * np.sqrt(0.25 / n)  # the differences are 0 or 1 with mean 0.5
    assert found.gain == pytest.approx(0.5)
    assert found.low == pytest.approx(0.5 - half_width, abs=0.006)
    assert found.high == pytest.approx(0.5 + half_width, abs=0.006)
    assert found.shown and "not distinguishable" not in found.words()


def test_identical_runs_show_no_difference():
    rng = np.random.default_rng(1)
    correct = [rng.integers(0, 2, 500) for _ in range(3)]
    found = bootstrap.paired(*_runs(correct, correct), bootstrap.accuracy)
    assert (found.gain, found.low, found.high) == (0.0, 0.0, 0.0)
    assert not found.shown and found.words() == "+0.00 points (95% CI +0.00 to +0.00; not distinguishable from zero)"


def test_seeds_that_disagree_widen_the_interval_over_zero():
    n = 1000
    better, worse = np.ones(n, int), (np.arange(n) % 10 != 0).astype(int)  # 100% against 90%
    found = bootstrap.paired(*_runs([better, worse], [worse, better]), bootstrap.accuracy)  # +10 then -10
    assert found.gain == pytest.approx(0.0) and found.low < -0.05 and found.high > 0.05 and not found.shown


def test_entity_counts_give_seqeval_s_strict_f1():
    true = [["B-PER", "I-PER", "O", "B-LOC"], ["O", "B-ORG", "I-ORG"], ["B-MISC", "O"]]
    pred = [["B-PER", "I-PER", "O", "B-ORG"], ["O", "B-ORG", "O"], ["I-MISC", "O"]]  # right, wrong type, cut, bad IOB2
    counts = bootstrap.entity_counts(true, pred)
    assert counts.tolist() == [[1, 1, 1], [0, 1, 1], [0, 0, 1]]
    assert bootstrap.entity_f1(counts.sum(axis=0)) == pytest.approx(metrics.entities(true, pred)["entity_f1"])


def test_runs_of_different_test_sets_are_refused():
    a = np.zeros((3, 10, 2))
    with pytest.raises(ValueError, match="not \\(seeds, examples, counts\\) pairs"):
        bootstrap.paired(a, np.zeros((3, 11, 2)), bootstrap.accuracy)


def test_seeds_of_different_lms_are_resampled_lm_by_lm():
    """Two LMs, three fine-tuning seeds each: within an LM the seeds agree, the LMs disagree (+10
    and -10 points). Resampling the seeds as if independent understates that; resampling the LMs
    first gives the wider interval the two LMs warrant. One group is the plain bootstrap."""
    n = 1000
    better, worse = np.ones(n, int), (np.arange(n) % 10 != 0).astype(int)
    a, b = _runs([better] * 3 + [worse] * 3, [worse] * 3 + [better] * 3)
    flat = bootstrap.paired(a, b, bootstrap.accuracy)
    nested = bootstrap.paired(a, b, bootstrap.accuracy, groups=[("gru", 7)] * 3 + [("gru", 8)] * 3)
    assert nested.gain == flat.gain == pytest.approx(0.0)
    assert nested.high - nested.low > 1.5 * (flat.high - flat.low)
    # both resampled LMs the same one: a quarter of the resamples at each LM's +-10 points (and test noise)
    assert nested.low == pytest.approx(-0.1, abs=0.025) and nested.high == pytest.approx(0.1, abs=0.025)
    one_lm = bootstrap.paired(a, b, bootstrap.accuracy, groups=[("gru", 7)] * 6)  # the same draws as no groups
    assert (one_lm.gain, one_lm.low, one_lm.high) == pytest.approx((flat.gain, flat.low, flat.high))
    with pytest.raises(ValueError, match="2 groups for 6 seeds"):
        bootstrap.paired(a, b, bootstrap.accuracy, groups=[("gru", 7), ("gru", 8)])


def test_the_models_of_a_task_are_strata_not_draws():
    """A task's models pooled: one gains 10 points on every seed, the other loses 10. Each resample
    keeps each model's share of the seeds, so the pooled gain stays at 0 with a narrow interval;
    drawing the seeds across models would swing it by the models' difference."""
    n = 1000
    better, worse = np.ones(n, int), (np.arange(n) % 10 != 0).astype(int)
    a, b = _runs([better] * 3 + [worse] * 3, [worse] * 3 + [better] * 3)
    by_model = bootstrap.paired(a, b, bootstrap.accuracy, groups=[("gru", 1)] * 3 + [("lstm", 1)] * 3)
    pooled = bootstrap.paired(a, b, bootstrap.accuracy)
    assert by_model.gain == pytest.approx(0.0) and by_model.high - by_model.low < 0.5 * (pooled.high - pooled.low)
