r"""The naive baselines: vector fields written the way the published research code
writes them (the JAX/equinox/diffrax code accompanying the research note).

For every edge list the field

1. renormalises the oscillator states inside the field, $x_i \leftarrow x_i/|x_i|$;
2. gathers both endpoints of every edge, $x_i, x_j$, and forms $s_e = x_i\cdot x_j$;
3. evaluates the interaction edge by edge;
4. sums per node with two scatter-adds, `f.at[i].add(w_e x_j)` and
   `f.at[j].add(w_e x_i)`;
5. projects with $P_x v = v - x (x\cdot v)$ (valid because $x$ was renormalised).

The Hopfield part is the dense $W_s g - x^H + b$, as in the research code. Signs follow
hopkur's convention (positive coupling synchronises); the research code minimises
$\sum\varphi$, so its interaction parameters are the negatives of these.

`check_against_hopkur` (in `problems.py`) verifies that these fields equal hopkur's
models to float rounding.
"""

import jax
import jax.numpy as jnp


def _normalise(x):
    return x / jnp.linalg.norm(x, axis=1, keepdims=True)


def _scatter_pairs(f, i, j, w_ij, w_ji):
    """`f[i] += w_ij`, `f[j] += w_ji`, one edge at a time (scatter-add)."""
    return f.at[i].add(w_ij).at[j].add(w_ji)


def kuramoto_field(x, edges, a, b):
    r"""Generalised Kuramoto field with the relu interaction
    $\varphi'(s) = a + b\,\mathrm{relu}(s)$ on an edge list, written the naive way.

    **Arguments:**

    - `x`: oscillator states `(N, D)`.
    - `edges`: `(E, 2)` integer edge list, each undirected edge once.
    - `a`, `b`: per-edge coefficients `(E,)`.

    **Returns:**

    $\dot x$, shape `(N, D)`.
    """
    x = _normalise(x)
    i, j = edges[:, 0], edges[:, 1]
    xi, xj = x[i], x[j]
    s = jnp.sum(xi * xj, axis=1)
    w = (a + b * jax.nn.relu(s))[:, None]
    f = _scatter_pairs(jnp.zeros_like(x), i, j, w * xj, w * xi)
    return f - x * jnp.sum(x * f, axis=1, keepdims=True)


def hopfield_kuramoto_field(
    y, weights, bias, k_edges, a, b, c_edges, c, kappa_h, kappa_k
):
    r"""The coupled Hopfield–Kuramoto field (network coupling, tanh activation, relu
    oscillator interaction), written the naive way.

    **Arguments:**

    - `y`: the state `(x_h, x)`, shapes `(N,)` and `(N, D)`.
    - `weights`, `bias`: the Hopfield parameters `(N, N)` and `(N,)`.
    - `k_edges`, `a`, `b`: the oscillator graph `(E, 2)` and its relu coefficients.
    - `c_edges`, `c`: the coupling graph `(E_c, 2)` and its coefficients `(E_c,)`.
    - `kappa_h`, `kappa_k`: the scales $\kappa_H, \kappa_K$.

    **Returns:**

    The tuple $(\dot x^H, \dot X)$.
    """
    x_h, x = y
    x = _normalise(x)
    g = jnp.tanh(x_h)
    ci, cj = c_edges[:, 0], c_edges[:, 1]
    # threshold units: v_i = sum_j c_ij (x_i . x_j) g_j, scattered edge by edge
    gram = jnp.sum(x[ci] * x[cj], axis=1)
    f_h = _scatter_pairs(
        jnp.zeros_like(g),
        ci,
        cj,
        gram * c * g[cj] / kappa_h,
        gram * c * g[ci] / kappa_h,
    )
    f_h = f_h + 0.5 * (weights + weights.T) @ g - x_h + bias
    # oscillators: the relu interaction, then u_i = sum_j c_ij g_i g_j x_j
    i, j = k_edges[:, 0], k_edges[:, 1]
    xi, xj = x[i], x[j]
    w = (a + b * jax.nn.relu(jnp.sum(xi * xj, axis=1)))[:, None]
    f = _scatter_pairs(jnp.zeros_like(x), i, j, w * xj, w * xi)
    cg = (c * g[ci] * g[cj])[:, None] / kappa_k
    f = _scatter_pairs(f, ci, cj, cg * x[cj], cg * x[ci])
    return f_h, f - x * jnp.sum(x * f, axis=1, keepdims=True)
