"""Analysis: order parameter, Lyapunov reports, fixed points and spectra, memory
retrieval and capacity, and the classical Kuramoto transition."""

from typing import Any

import diffrax as dfx
import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

import hopkur
import hopkur.data


def _unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


# ------------------------------------------------------------------ order parameter


def test_order_parameter_by_hand():
    # Two opposite oscillators and one more: R = |mean| = 1/3.
    x = jnp.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0]])
    assert jnp.allclose(hopkur.order_parameter(x), 1.0 / 3.0)
    same = jnp.tile(jnp.array([[0.0, 0.6, 0.8]]), (5, 1))
    assert jnp.allclose(hopkur.order_parameter(same), 1.0)
    # Evenly spread on the circle: R = 0.
    theta = jnp.linspace(0, 2 * jnp.pi, 8, endpoint=False)
    ring = jnp.stack([jnp.cos(theta), jnp.sin(theta)], axis=-1)
    assert jnp.allclose(hopkur.order_parameter(ring), 0.0, atol=1e-15)
    # Leading axes are kept.
    stacked = jnp.stack([x, same[:3, :2] / 0.6, ring[:3]])
    assert hopkur.order_parameter(stacked).shape == (3,)
    with pytest.raises((ValueError, TypeError)):
        hopkur.order_parameter(jnp.ones(3))


# ------------------------------------------------------------------ Lyapunov report


def _kuramoto(omega_i: bool, n=6, d=2, seed=0):
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((n, n))
    omega = None
    if omega_i:
        omega = hopkur.planar_rotations(jnp.asarray(3 * rng.standard_normal(n)))
    model = hopkur.Kuramoto(hopkur.DenseCoupling(jnp.asarray(w + w.T)), omega=omega)
    x0 = jnp.asarray(_unit(rng.standard_normal((n, d))))
    return model, x0


# Fixed Euler steps (cheap to compile): the report does not care how states were made.
SOLVE: dict[str, Any] = dict(
    t1=10.0,
    dt0=0.01,
    solver=dfx.Euler(),
    stepsize_controller=dfx.ConstantStepSize(),
    saveat=dfx.SaveAt(ts=jnp.linspace(0.0, 10.0, 41)),
    max_steps=1000,
)


def test_lyapunov_report_gradient_and_non_gradient():
    model, x0 = _kuramoto(False)
    report = hopkur.lyapunov_report(model, hopkur.simulate(model, x0, **SOLVE))
    assert report.verdict == "decreasing" and report.decreasing
    assert report.is_gradient_system and report.finite and report.solve_succeeded
    assert report.energies.shape == (41,)
    assert report.max_increase_time is None
    assert "decreasing" in str(report) and "gradient system: yes" in str(report)

    model, x0 = _kuramoto(True)
    # A batch (leading axis on ts) is judged as a whole; its first element alone too.
    sols = hopkur.simulate_batch(model, jnp.stack([x0, x0[::-1]]), **SOLVE)
    arrays, rest = eqx.partition(sols, eqx.is_array)
    sol = eqx.combine(jax.tree.map(lambda a: a[0], arrays), rest)
    report = hopkur.lyapunov_report(model, sol)
    assert not report.decreasing and not report.is_gradient_system
    assert (
        report.verdict.startswith("increased by") and "not a gradient" in report.verdict
    )
    assert sol.ys is not None
    energies = np.asarray([model.energy(y, None) for y in sol.ys])
    assert np.isclose(report.max_increase, np.max(np.diff(energies)), rtol=1e-10)
    assert report.max_increase_time is not None and 0 < report.max_increase_time <= 10

    report_b = hopkur.lyapunov_report(model, sols)
    assert report_b.energies.shape == (2, 41)
    assert report_b.max_increase >= report.max_increase * (1 - 1e-9)
    assert "2 trajectories" in str(report_b)


def test_lyapunov_report_divergence():
    """Identity Lagrangian with lambda_max(W) > 1: the energy runs off to -inf. Large
    Euler steps overflow to non-finite values."""
    n = 4
    model = hopkur.Hopfield(
        5.0 * jnp.ones((n, n)), jnp.zeros(n), hopkur.lagrangian_identity
    )
    out = hopkur.akorn_steps(model, jnp.ones(n), steps=400, gamma=1.0)
    report = hopkur.lyapunov_report(model, out)
    assert not report.finite and not report.decreasing
    assert report.verdict.startswith("diverged")
    assert model.energy_bounded_below() is False


def test_lyapunov_report_needs_saves():
    model, x0 = _kuramoto(False)
    sol = hopkur.simulate(model, x0, **SOLVE)
    assert sol.ts is not None and sol.ys is not None
    one = eqx.tree_at(lambda s: (s.ts, s.ys), sol, (sol.ts[:1], sol.ys[:1]))
    with pytest.raises(ValueError, match="at least two saved states"):
        hopkur.lyapunov_report(model, one)
    with pytest.raises((ValueError, TypeError), match="Solution"):
        hopkur.lyapunov_report(model, sol.ys)  # pyright: ignore


# ------------------------------------------------------------------ fixed points


def test_spectrum_two_oscillators_by_hand():
    """theta_1' = K sin(theta_2 - theta_1) and vice versa: in phase the Jacobian has
    eigenvalues {0, -2K}, in anti-phase {0, +2K}; 0 is the common rotation."""
    k = 1.5
    model = hopkur.Kuramoto(hopkur.DenseCoupling(jnp.array([[0.0, k], [k, 0.0]])))
    sync = jnp.array([[1.0, 0.0], [1.0, 0.0]])
    anti = jnp.array([[1.0, 0.0], [-1.0, 0.0]])
    s = hopkur.fixed_point_spectrum(model, sync, zero_modes=1)
    assert s.kind == "stable" and np.allclose(s.eigenvalues, [-2 * k])
    assert np.allclose(s.symmetry_eigenvalues, [0.0], atol=1e-12)
    u = hopkur.fixed_point_spectrum(model, anti, zero_modes=1)
    assert u.kind == "unstable" and np.allclose(u.eigenvalues, [2 * k])
    # Without setting the rotation aside, the in-phase state is marginal.
    assert hopkur.fixed_point_spectrum(model, sync).kind == "marginal"


def test_find_fixed_points_kuramoto_with_field():
    rng = np.random.default_rng(5)
    n, d = 5, 2
    w = rng.standard_normal((n, n))
    model = hopkur.Kuramoto(
        hopkur.DenseCoupling(jnp.asarray(w + w.T)),
        field=jnp.asarray(rng.standard_normal((n, d))),
    )
    starts = jnp.asarray(_unit(rng.standard_normal((48, n, d))))
    found = hopkur.find_fixed_points(model, starts)
    assert len(found) >= 2 and found.num_converged >= 24
    assert np.all(found.residuals < 1e-8)
    assert np.all(np.diff(found.energies) >= 0)
    assert np.all(np.abs(np.linalg.norm(np.asarray(found.ys), axis=-1) - 1) < 1e-12)
    assert found.stability is not None
    kinds = [s.kind for s in found.stability]
    # A gradient system: real spectra; the lowest energy is a minimum (stable), and
    # there are saddles.
    assert kinds[0] == "stable" and "saddle" in kinds
    for s in found.stability:
        assert np.allclose(np.imag(s.eigenvalues), 0.0, atol=1e-8)
    # Gradient descent (small AKOrN steps) from a start lands on a stable point found.
    y = hopkur.akorn_steps(
        model, starts[0], steps=4000, gamma=0.02, save_states=False
    ).ys
    stable = [k for k, s in enumerate(found.stability) if s.kind == "stable"]
    gaps = [np.max(np.abs(np.asarray(found.ys[k] - y))) for k in stable]
    assert min(gaps) < 1e-6
    assert "distinct fixed points" in str(found)


def test_find_fixed_points_hopfield_memories():
    """A Hopfield network storing two patterns: +-(each pattern) are stable; the origin
    is a fixed point too, unstable."""
    rng = np.random.default_rng(6)
    n = 12
    patterns = jnp.asarray(rng.choice([-1.0, 1.0], size=(2, n)))
    model = hopkur.Hopfield(
        4.0 * hopkur.hebbian_weights(patterns), jnp.zeros(n), hopkur.lagrangian_tanh
    )
    starts = jnp.concatenate(
        [
            3 * patterns,
            -3 * patterns,
            jnp.zeros((1, n)),
            jnp.asarray(rng.standard_normal((8, n))),
        ]
    )
    found = hopkur.find_fixed_points(model, starts)
    signs = np.sign(np.asarray(found.ys))
    assert found.stability is not None
    kinds = {tuple(s): st.kind for s, st in zip(signs, found.stability)}
    for p in np.asarray(patterns):
        assert kinds[tuple(p)] == "stable" and kinds[tuple(-p)] == "stable"
    origin = [
        st.kind
        for y, st in zip(np.asarray(found.ys), found.stability)
        if np.all(np.abs(y) < 1e-8)
    ]
    assert origin and origin[0] in ("unstable", "saddle")


# ------------------------------------------------------------------ memory


def test_hebbian_overlaps_and_corruption(getkey):
    patterns = jnp.array([[1.0, -1.0, 1.0, 1.0], [1.0, 1.0, -1.0, 1.0]])
    w = hopkur.hebbian_weights(patterns)
    expected = (
        jnp.outer(patterns[0], patterns[0]) + jnp.outer(patterns[1], patterns[1])
    ) / 4
    assert jnp.allclose(w, expected - jnp.diag(jnp.diag(expected)))
    assert jnp.allclose(
        hopkur.pattern_overlaps(patterns, patterns), jnp.array([[1.0, 0.0], [0.0, 1.0]])
    )
    big = jnp.asarray(np.random.default_rng(0).choice([-1.0, 1.0], size=(6, 100)))
    bad = hopkur.corrupt_patterns(big, 0.1, key=getkey())
    assert jnp.all(jnp.sum(bad != big, axis=-1) == 10)
    assert jnp.allclose(jnp.diag(hopkur.pattern_overlaps(bad, big)), 0.8)
    with pytest.raises((ValueError, TypeError), match="flip_fraction"):
        hopkur.corrupt_patterns(big, 1.5, key=getkey())
    # One rule, one implementation: the deprecated hopkur.data.corrupt makes the same
    # draws (under its old argument name).
    key = getkey()
    with pytest.warns(DeprecationWarning, match="hopkur.corrupt_patterns"):
        corrupt = hopkur.data.corrupt
    assert jnp.array_equal(
        hopkur.corrupt_patterns(big, 0.3, key=key), corrupt(big, fraction=0.3, key=key)
    )
    with pytest.warns(DeprecationWarning):
        from hopkur.data.patterns import corrupt as corrupt_too
    assert corrupt_too is corrupt


def test_sign_retrieval_repairs_a_corrupted_pattern(getkey):
    rng = np.random.default_rng(7)
    n = 100
    patterns = jnp.asarray(rng.choice([-1.0, 1.0], size=(3, n)))
    w = hopkur.hebbian_weights(patterns)
    cues = hopkur.corrupt_patterns(patterns, 0.2, key=getkey())
    for asynchronous in (True, False):
        s = hopkur.sign_retrieve(
            w, cues, key=getkey(), sweeps=5, asynchronous=asynchronous
        )
        assert jnp.allclose(jnp.diag(hopkur.pattern_overlaps(s, patterns)), 1.0)


def test_capacity_collapses_near_critical_load():
    """The classical network: perfect retrieval at low load, none well above the
    critical load (about 0.138 N as N -> infinity; finite N smears it upwards)."""
    sweep = hopkur.capacity_sweep(
        200, [0.05, 0.1, 0.15, 0.2, 0.3], key=jr.key(0), trials=2, cues=32
    )
    assert sweep.retrieved_fraction[0] >= 0.95 and sweep.mean_overlap[0] > 0.98
    assert sweep.retrieved_fraction[-1] <= 0.1 and sweep.mean_overlap[-1] < 0.7
    assert np.all(np.diff(sweep.mean_overlap) <= 0.05)  # (roughly) monotone
    crit = sweep.critical_load
    assert crit is not None and 0.1 <= crit <= 0.25
    assert "critical load" in str(sweep)
    assert list(sweep.num_patterns) == [10, 20, 30, 40, 60]


@pytest.mark.slow
def test_continuous_capacity():
    """The continuous tanh network with a high gain behaves like the sign network; a
    low gain holds fewer patterns."""
    loads = [0.05, 0.1, 0.15, 0.2, 0.3]
    high = hopkur.capacity_sweep(
        100, loads, key=jr.key(1), variant="tanh", gain=20.0, trials=2, cues=16
    )
    low = hopkur.capacity_sweep(
        100, loads, key=jr.key(1), variant="tanh", gain=2.0, trials=2, cues=16
    )
    assert high.retrieved_fraction[0] >= 0.9 and high.retrieved_fraction[-1] <= 0.2
    assert high.critical_load is not None and low.critical_load is not None
    assert low.critical_load < high.critical_load


# ------------------------------------------------------------------ Kuramoto theory


def test_lorentzian_theory_helpers():
    freqs = hopkur.lorentzian_frequencies(1000, 0.5)
    assert np.allclose(freqs, -freqs[::-1]) and np.all(np.diff(freqs) > 0)
    assert np.isclose(np.median(np.abs(freqs)), 0.5, rtol=1e-2)  # half width
    cut = hopkur.lorentzian_frequencies(1000, 0.5, max_abs=10.0)
    assert np.max(np.abs(cut)) <= 10.0
    r = hopkur.kuramoto_order_theory([0.5, 1.0, 2.0, 4.0], 0.5)
    assert np.allclose(r, [0.0, 0.0, np.sqrt(0.5), np.sqrt(0.75)])
    # Truncation only slightly raises r (c = 1 / (1 - tail mass)).
    assert np.all(hopkur.kuramoto_order_theory([2.0, 4.0], 0.5, max_abs=50.0) > r[2:])


def test_kuramoto_transition_matches_theory():
    """All-to-all Kuramoto model with Lorentzian frequencies (half width 0.5, so
    K_c = 1): time-averaged r against sqrt(1 - K_c/K), and r ~ N^{-1/2} below K_c.

    Fixed-step Heun with retraction: the fastest oscillators (|omega| ~ 600) are not
    resolved, but the retracted step maps a fast rotation to a fast rotation (Heun's
    phase per step grows monotonically with omega dt), so they stay drifting, as in
    the exact dynamics; fixed points of the map are exactly those of the flow."""
    n, gamma, t1 = 2000, 0.5, 80.0
    freqs = hopkur.lorentzian_frequencies(n, gamma)
    theta = np.random.default_rng(0).uniform(0, 2 * np.pi, n)
    x0 = jnp.asarray(np.stack([np.cos(theta), np.sin(theta)], axis=-1))
    omega = hopkur.planar_rotations(jnp.asarray(freqs))
    ts = jnp.linspace(t1 / 2, t1, 81)
    measured = []
    for k in (0.5, 1.5, 3.0):
        model = hopkur.Kuramoto(hopkur.MeanFieldCoupling(k), omega=omega)
        sol = hopkur.simulate(
            model,
            x0,
            t1=t1,
            dt0=0.05,
            solver=dfx.Heun(),
            stepsize_controller=dfx.ConstantStepSize(),
            saveat=dfx.SaveAt(ts=ts),
            max_steps=2000,
        )
        assert sol.ys is not None
        measured.append(float(jnp.mean(hopkur.order_parameter(sol.ys))))
    theory = hopkur.kuramoto_order_theory([1.5, 3.0], gamma)
    assert measured[0] < 0.08  # incoherent: r ~ N^{-1/2}
    assert np.allclose(measured[1:], theory, atol=0.03)
