"""Bad input gets a clear ValueError naming the argument, the expected and the given."""

import jax.numpy as jnp
import jax.random as jr
import pytest

import hopkur


# jaxtyping's runtime checks (on under pytest) may fire first, as a TypeError subclass.
BAD = (ValueError, TypeError)


def test_hopfield_non_square_weights():
    with pytest.raises(BAD, match="weights"):
        hopkur.Hopfield(jnp.zeros((3, 4)), jnp.zeros(3), hopkur.lagrangian_tanh)


def test_hopfield_bias_shape():
    with pytest.raises(
        ValueError, match=r"`Hopfield\(bias=...\)` must have shape \(3,\); got \(4,\)"
    ):
        hopkur.Hopfield(jnp.zeros((3, 3)), jnp.zeros(4), hopkur.lagrangian_tanh)


def test_hopfield_nan_weights():
    w = jnp.zeros((3, 3)).at[0, 1].set(jnp.nan)
    with pytest.raises(ValueError, match=r"`Hopfield\(weights=...\)` must be finite"):
        hopkur.Hopfield(w, jnp.zeros(3), hopkur.lagrangian_tanh)


def test_hopfield_state_shape():
    model = hopkur.Hopfield(jnp.zeros((3, 3)), jnp.zeros(3), hopkur.lagrangian_tanh)
    with pytest.raises(ValueError, match="shape"):
        model.vector_field(0.0, jnp.zeros(4), None)


def test_dense_coupling_non_square():
    with pytest.raises(BAD, match="weights"):
        hopkur.DenseCoupling(jnp.zeros((3, 2)))


def test_edges_out_of_range():
    edges = jnp.array([[0, 1], [1, 5]])
    with pytest.raises(ValueError, match=r"must index nodes in \[0, 4\)"):
        hopkur.EdgeCoupling(edges, hopkur.LinearInteraction(1.0), n=4)
    coupling = hopkur.EdgeCoupling(edges, hopkur.LinearInteraction(1.0))
    with pytest.raises(ValueError, match=r"must index nodes in \[0, 4\)"):
        hopkur.Kuramoto(coupling, field=jnp.zeros((4, 3)))


def test_edges_self_loop_and_duplicates():
    with pytest.raises(ValueError, match="self-loops"):
        hopkur.EdgeCoupling(jnp.array([[0, 1], [2, 2]]), hopkur.LinearInteraction(1.0))
    with pytest.raises(ValueError, match="once"):
        hopkur.EdgeCoupling(jnp.array([[0, 1], [1, 0]]), hopkur.LinearInteraction(1.0))
    with pytest.raises(BAD, match="edges"):
        hopkur.EdgeCoupling(jnp.array([0, 1, 2]), hopkur.LinearInteraction(1.0))
    with pytest.raises(BAD, match="edges"):
        hopkur.NetworkCoupling(jnp.array([[0, 1], [1, 1]]), jnp.ones(2))


def test_interaction_parameter_count():
    with pytest.raises(ValueError, match="3 edges"):
        hopkur.EdgeCoupling(
            jnp.array([[0, 1], [1, 2]]), hopkur.LinearInteraction(jnp.ones(3))
        )


def test_mismatched_dimension():
    model = hopkur.Kuramoto(
        hopkur.DenseCoupling(jnp.ones((4, 4))), field=jnp.zeros((4, 3))
    )
    with pytest.raises(
        ValueError, match=r"expected a state of shape \(4, 3\); got \(4, 2\)"
    ):
        model.vector_field(0.0, jnp.ones((4, 2)), None)
    with pytest.raises(BAD, match="field"):
        hopkur.Kuramoto(hopkur.DenseCoupling(jnp.ones((4, 4))), field=jnp.zeros((5, 3)))
    with pytest.raises(BAD, match="omega"):
        hopkur.Kuramoto(
            hopkur.DenseCoupling(jnp.ones((4, 4))),
            field=jnp.zeros((4, 3)),
            omega=jnp.zeros((2, 2)),
        )


def test_dimension_below_two():
    model = hopkur.Kuramoto(hopkur.MeanFieldCoupling(1.0))
    with pytest.raises(ValueError, match="D >= 2"):
        model.vector_field(0.0, jnp.ones((4, 1)), None)
    with pytest.raises(BAD, match="D >= 2"):
        hopkur.Kuramoto(hopkur.MeanFieldCoupling(1.0), field=jnp.zeros((4, 1)))


def test_omega_shape():
    coupling = hopkur.MeanFieldCoupling(1.0)
    with pytest.raises(BAD, match="omega"):
        hopkur.Kuramoto(coupling, omega=jnp.zeros((3, 4)))
    with pytest.raises(BAD, match="omega"):
        hopkur.Kuramoto(coupling, omega=jnp.zeros((3,)))
    with pytest.raises(BAD, match="omega"):
        hopkur.Kuramoto(coupling, omega=jnp.zeros((2, 3, 3, 3)))


def test_nan_parameters():
    with pytest.raises(ValueError, match="finite"):
        hopkur.Kuramoto(hopkur.MeanFieldCoupling(1.0), omega=jnp.full((2, 2), jnp.nan))
    with pytest.raises(ValueError, match="finite"):
        hopkur.ReluInteraction(jnp.array([1.0, jnp.nan]), 1.0)
    with pytest.raises(ValueError, match="finite"):
        hopkur.AdditiveCoupling(jnp.nan)


def test_coupled_size_mismatch():
    hopfield = hopkur.Hopfield(jnp.zeros((3, 3)), jnp.zeros(3), hopkur.lagrangian_tanh)
    kuramoto = hopkur.Kuramoto(hopkur.DenseCoupling(jnp.ones((4, 4))))
    with pytest.raises(ValueError, match="must match"):
        hopkur.HopfieldKuramoto(hopfield, kuramoto, hopkur.AdditiveCoupling(1.0))


def test_block_coupling_shape():
    with pytest.raises(BAD, match="blocks"):
        hopkur.BlockCoupling(jr.normal(jr.key(0), (3, 3, 2, 3)))
    with pytest.raises(BAD, match="D >= 2"):
        hopkur.BlockCoupling(jnp.ones((3, 3, 1, 1)))
