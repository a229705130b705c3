"""Natural-frequency generators: deterministic midpoint quantiles (sorted, symmetric,
of the right distribution) or i.i.d. draws from a key (reproducible, of the right
distribution by a Kolmogorov–Smirnov bound)."""

import math

import jax.random as jr
import numpy as np
import pytest

import hopkur


def _lorentz_cdf(x, gamma):
    return 0.5 + np.arctan(x / gamma) / np.pi


CDFS = {
    "lorentzian": (
        lambda n, w, key=None: hopkur.lorentzian_frequencies(n, w, key=key),
        lambda x, w: _lorentz_cdf(x, w),
    ),
    "gaussian": (
        hopkur.gaussian_frequencies,
        lambda x, w: 0.5 * (1 + np.vectorize(math.erf)(x / (w * np.sqrt(2)))),
    ),
    "uniform": (
        hopkur.uniform_frequencies,
        lambda x, w: np.clip((x + w) / (2 * w), 0, 1),
    ),
    "bimodal": (
        lambda n, w, key=None: hopkur.bimodal_frequencies(n, w, 1.5 * w, key=key),
        lambda x, w: 0.5
        * (_lorentz_cdf(x - 1.5 * w, w) + _lorentz_cdf(x + 1.5 * w, w)),
    ),
}


@pytest.mark.parametrize("name", sorted(CDFS))
@pytest.mark.parametrize("seed", range(2))
def test_quantiles_and_draws(name, seed):
    make, cdf = CDFS[name]
    rng = np.random.default_rng(seed)
    n, width = int(rng.integers(50, 400)), float(rng.uniform(0.2, 2.0))
    q = make(n, width)
    assert isinstance(q, np.ndarray) and q.shape == (n,)
    assert np.all(np.diff(q) > 0) and np.allclose(q, -q[::-1], atol=1e-12)
    # midpoint quantiles: the distribution function at omega_i is (i + 1/2)/n
    assert np.allclose(cdf(q, width), (np.arange(n) + 0.5) / n, atol=1e-9)
    key = jr.key(seed)
    draws = make(4000, width, key=key)
    assert np.array_equal(draws, make(4000, width, key=key))
    assert not np.array_equal(draws, make(4000, width, key=jr.key(seed + 10)))
    # Kolmogorov–Smirnov: sup |F_n - F| < 1.63 / sqrt(n) at the 1 % level
    x = np.sort(draws)
    ks = np.max(np.abs(cdf(x, width) - (np.arange(4000) + 0.5) / 4000)) - 0.5 / 4000
    assert ks < 1.63 / np.sqrt(4000)


def test_lorentzian_truncated_draws():
    draws = hopkur.lorentzian_frequencies(2000, 0.5, max_abs=3.0, key=jr.key(0))
    assert np.max(np.abs(draws)) <= 3.0


@pytest.mark.parametrize(
    "call, match",
    [
        (
            lambda: hopkur.gaussian_frequencies(10, -1.0),
            r"gaussian_frequencies\(width=",
        ),
        (
            lambda: hopkur.uniform_frequencies(10, float("nan")),
            r"uniform_frequencies\(width=",
        ),
        (
            lambda: hopkur.bimodal_frequencies(10, 1.0, -2.0),
            r"bimodal_frequencies\(separation=",
        ),
        (lambda: hopkur.lorentzian_frequencies(0, 1.0), r"lorentzian_frequencies\(n="),
    ],
)
def test_bad_frequency_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()
