"""A small, real experiment: fit a ridge regression for several penalties.

Run it with ``python examples/simple_experiment.py``: it records one trial per
penalty in ``daskperiment_cache/ridge_demo/`` (below where you run it) and
prints the history, the loss curves of two trials and the environment summary.

It is a script: as in daskperiment 0.5, calling the ``@ex.result`` step in a
script run as a file runs one trial and returns its result (imported, or in
Jupyter, the call only builds the graph and ``.compute()`` runs it). Values
given on the command line (``python simple_experiment.py n_samples=500
--seed 3``) apply to every trial.
"""

from __future__ import annotations

import logging

import numpy as np

import daskperiment

logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

ex = daskperiment.Experiment(id="ridge_demo", seed=0)
alpha = ex.parameter("alpha")
n_samples = ex.parameter("n_samples", default=200)


@ex.persist
def make_data(n_samples):
    """Noisy samples of a linear function of five features."""
    features = np.random.normal(size=(n_samples, 5))
    weights = np.array([1.5, -2.0, 0.0, 0.5, 3.0])
    target = features @ weights + np.random.normal(scale=0.5, size=n_samples)
    return features, target


@ex
def fit(data, alpha):
    """Ridge regression by gradient descent; the loss of each epoch is a metric."""
    features, target = data
    weights = np.zeros(features.shape[1])
    for epoch in range(50):
        residual = features @ weights - target
        loss = float(np.mean(residual**2) + alpha * np.sum(weights**2))
        ex.save_metric("loss", epoch=epoch, value=loss)
        gradient = 2 * features.T @ residual / len(target) + 2 * alpha * weights
        weights -= 0.05 * gradient
    return weights


@ex.result
def score(data, weights):
    """Mean squared error of the fitted weights."""
    features, target = data
    if not np.all(np.isfinite(weights)):
        raise ValueError("the fit diverged")
    return float(np.mean((features @ weights - target) ** 2))


data = make_data(n_samples)

if __name__ == "__main__":
    first = ex.trial_id + 1
    for value in (0.0, 0.01, 0.1, 1.0):
        ex.set_parameters(alpha=value)
        score(data, fit(data, alpha))  # runs one trial: this file is run as a script
    print(ex.get_history().to_string())
    print(ex.load_metric("loss", trial_id=[first, first + 3]).tail())
    print(ex.get_environment())
