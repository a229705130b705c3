import jax.random as jr
import numpy as np
import pytest

import hopkur


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
