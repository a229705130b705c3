import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

import hopkur
import hopkur._graphs


def _is_connected(n, edges):
    adj = [[] for _ in range(n)]
    for u, v in edges:
        adj[u].append(v)
        adj[v].append(u)
    seen, stack = {0}, [0]
    while stack:
        for w in adj[stack.pop()]:
            if w not in seen:
                seen.add(w)
                stack.append(w)
    return len(seen) == n


@pytest.mark.parametrize(
    "n,k,p", [(20, 4, 0.1), (50, 6, 0.5), (100, 10, 1.0), (30, 2, 0.3)]
)
def test_small_world(n, k, p):
    edges = hopkur.small_world_edges(jr.key(n), n, k, p)
    assert edges.shape == (n * k // 2, 2)
    assert np.all(edges[:, 0] < edges[:, 1])
    assert len({tuple(e) for e in edges}) == len(edges)
    assert _is_connected(n, edges)
    again = hopkur.small_world_edges(jr.key(n), n, k, p)
    assert np.array_equal(edges, again)


def test_small_world_rewires():
    ring = hopkur.ring_edges(40, 4)
    sw = hopkur.small_world_edges(jr.key(0), 40, 4, 0.5)
    assert {tuple(e) for e in ring} != {tuple(e) for e in sw}
    assert np.array_equal(hopkur.small_world_edges(jr.key(0), 40, 4, 0.0), ring)


def test_complete_and_ring():
    assert hopkur.complete_edges(5).shape == (10, 2)
    ring = hopkur.ring_edges(6, 2)
    assert {tuple(e) for e in ring} == {(0, 1), (1, 2), (2, 3), (3, 4), (4, 5), (0, 5)}
    with pytest.raises(ValueError, match="even"):
        hopkur.ring_edges(6, 3)


def test_edge_matrix():
    edges = np.array([[0, 1], [1, 3], [2, 0]])
    values = jnp.array([1.5, -2.0, 3.0])
    m = hopkur._graphs.edge_matrix(edges, 4, values)
    expected = np.zeros((4, 4))
    for (i, j), v in zip(edges, np.asarray(values)):
        expected[i, j] = expected[j, i] = v
    np.testing.assert_array_equal(np.asarray(m), expected)
    assert m.dtype == values.dtype
    # the adjacency: booleans by default, or ones of a given dtype
    adjacency = hopkur._graphs.edge_matrix(edges, 4)
    assert adjacency.dtype == jnp.bool_
    np.testing.assert_array_equal(np.asarray(adjacency), expected != 0)
    ones = hopkur._graphs.edge_matrix(edges, 4, dtype=jnp.float32)
    assert ones.dtype == jnp.float32 and float(jnp.sum(ones)) == 6.0
    # differentiable in the values: d sum(M) / d values = 2 per edge
    grad = jax.grad(lambda v: jnp.sum(hopkur._graphs.edge_matrix(edges, 4, v)))(values)
    np.testing.assert_array_equal(np.asarray(grad), 2.0)
