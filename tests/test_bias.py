"""Output bias from the class prior: the issue's figures, and property tests."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from train.bias import prior_entropy, prior_init, sigmoid_bias, softmax_biases


def test_cats_and_dogs():
    init = prior_init(["cats", "dogs"], [7163, 11670])
    assert round(init.bias[0], 4) == 0.4881  # dog is the positive class (folder order)
    assert round(init.expected_loss, 4) == 0.6642
    assert init.zero_bias_loss == pytest.approx(math.log(2))


@given(st.integers(1, 10**7), st.integers(1, 10**7))
def test_sigmoid_of_bias_is_the_positive_share(negatives, positives):
    bias = sigmoid_bias(negatives, positives)
    assert 1 / (1 + math.exp(-bias)) == pytest.approx(positives / (negatives + positives), rel=1e-9)


@given(st.lists(st.integers(1, 10**6), min_size=2, max_size=30))
def test_softmax_of_biases_is_the_prior(counts):
    biases = softmax_biases(counts)
    softmax = np.exp(biases - biases.max())
    softmax /= softmax.sum()
    np.testing.assert_allclose(softmax, np.array(counts) / sum(counts), rtol=1e-9)


@given(st.lists(st.integers(1, 10**6), min_size=2, max_size=30))
def test_expected_loss_is_the_cross_entropy_of_predicting_the_prior(counts):
    prior = np.array(counts) / sum(counts)
    labels_weighted = -(np.array(counts) * np.log(prior)).sum() / sum(counts)
    assert prior_entropy(counts) == pytest.approx(labels_weighted, rel=1e-9)
    assert prior_entropy(counts) <= math.log(len(counts)) + 1e-12  # never above the uniform guess


@pytest.mark.parametrize("counts", [[5], [3, 0], [-1, 4]])
def test_bad_counts(counts):
    with pytest.raises(ValueError):
        prior_init([str(i) for i in range(len(counts))], counts)


def test_log_probabilities_are_exact_where_probabilities_underflow_and_nan_for_bad_logits():
    from train.bias import log_probabilities, probabilities

    logits = np.array([[2.0, -1.0, 0.5], [1e4, 0.0, -1e4], [np.nan, 0.0, 0.0], [np.inf, 0, 0]])
    logs = log_probabilities(logits, binary=False)
    np.testing.assert_allclose(np.exp(logs[:2]).sum(axis=1), 1.0, rtol=1e-12)
    np.testing.assert_allclose(np.exp(logs[:2]), probabilities(logits[:2], False), rtol=1e-12)
    assert logs[1].tolist() == [0.0, -1e4, -2e4]  # log(softmax) would give -inf twice
    assert np.isnan(logs[2:]).all()
    binary = log_probabilities(np.array([[-800.0], [np.inf]]), binary=True)
    assert binary[0].tolist() == [0.0, -800.0] and np.isnan(binary[1]).all()
