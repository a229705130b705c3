r"""Noise for [`hopkur.simulate`][] (private): the diffusion term, the Brownian path and
the checks of `noise=` and `key=`.

The noise is Stratonovich, $dy = f(y)\,dt + G(y)\circ dW$, with $G(y)\,v$ the
derivative of the model's retraction at the (retracted) state in the direction
$\sigma v$: for oscillators, whose retraction is row normalisation, that derivative is
the tangent projector, $G(x_i) = \sigma P_{x_i} = \sigma(I - x_i x_i^\top)$ (isotropic
tangent noise); for threshold units, whose retraction is the identity, it is $\sigma I$
(additive noise). So every model gets the noise of MODELS.md §6 without knowing which
of its parts are oscillators.
"""

from collections.abc import Callable
from typing import Any

import diffrax as dfx
import equinox as eqx
import jax
import jax.core
import jax.numpy as jnp
import jax.random as jr
import jax.tree_util as jtu
import lineax as lx
import numpy as np
from jaxtyping import Array, PyTree


class _Tangent(eqx.Module):
    # $v \mapsto$ d retract(x)[sigma * v]: one application of the diffusion operator
    retract: Callable = eqx.field(static=True)
    x: PyTree[Array]
    sigma: PyTree[Array]

    def __call__(self, v):
        scaled = jtu.tree_map(lambda s, w: (s * w).astype(w.dtype), self.sigma, v)
        return jax.jvp(self.retract, (self.x,), (scaled,))[1]


class Diffusion(eqx.Module):
    """The diffusion of the noisy model: at the state `y`, the linear operator
    $v \\mapsto D\\,\\mathrm{retract}(\\hat y)[\\sigma v]$ with
    $\\hat y = \\mathrm{retract}(y)$ (see the module docstring), for
    `diffrax.ControlTerm`."""

    retract: Callable = eqx.field(static=True)
    sigma: PyTree[Array]

    def __call__(self, t, y, args):
        del t, args
        x = self.retract(y)
        structure = jax.eval_shape(lambda: y)
        return lx.FunctionLinearOperator(
            _Tangent(self.retract, x, self.sigma), structure, closure_convert=False
        )


class StepIncrements(dfx.AbstractBrownianPath):
    """Brownian increments for a fixed-step solve: the increment over $[t_0, t_1]$ is a
    fresh normal draw of variance $t_1 - t_0$, from the key folded with the bits of
    $t_0$ and $t_1$ (as `diffrax.UnsafeBrownianPath` does). Exact, and about ten times
    cheaper than `diffrax.VirtualBrownianTree`, when every interval is queried once and
    the intervals are the solver's steps: a constant step size, no rejected steps.
    Deterministic in the key and the step times, so a reverse-mode pass that recomputes
    steps from checkpoints sees the same increments."""

    shape: PyTree[jax.ShapeDtypeStruct] = eqx.field(static=True)
    key: Any
    levy_area: type = eqx.field(static=True, default=dfx.BrownianIncrement)

    @property
    def t0(self):  # pyright: ignore[reportIncompatibleVariableOverride]
        return -jnp.inf

    @property
    def t1(self):  # pyright: ignore[reportIncompatibleVariableOverride]
        return jnp.inf

    def evaluate(self, t0, t1=None, left=True, use_levy=False):
        del left
        if use_levy:
            raise ValueError(
                "`hopkur.simulate(noise=...)` with a constant step draws Brownian "
                "increments only (no Levy area): use a solver that needs none, such "
                "as the default `diffrax.Heun()`."
            )
        if t1 is None:
            t0, t1 = jnp.zeros_like(t0), t0
        t0 = jax.lax.stop_gradient(jnp.asarray(t0))
        t1 = jax.lax.stop_gradient(jnp.asarray(t1))
        key = jr.fold_in(self.key, _bits(t0))
        key = jr.fold_in(key, _bits(t1))
        leaves, treedef = jtu.tree_flatten(self.shape)
        keys = jr.split(key, len(leaves))
        out = [
            jr.normal(k, s.shape, s.dtype) * jnp.sqrt(t1 - t0).astype(s.dtype)
            for k, s in zip(keys, leaves)
        ]
        return jtu.tree_unflatten(treedef, out)


def _bits(t: Array) -> Array:
    # the bits of a float time as an integer (float64 folded to 32 bits)
    if t.dtype == jnp.float64:
        b = jax.lax.bitcast_convert_type(t, jnp.uint32)
        return b[..., 0] ^ b[..., 1]
    return jax.lax.bitcast_convert_type(t.astype(jnp.float32), jnp.uint32)


def brownian_path(y0, key, t0, t1, dt0, constant_step: bool):
    """The Brownian path of a noisy solve: `StepIncrements` with a constant step,
    else a `diffrax.VirtualBrownianTree` of tolerance `|dt0| / 2`."""
    shape = jtu.tree_map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype), y0)
    if constant_step:
        return StepIncrements(shape=shape, key=key)
    lo, hi = jnp.minimum(t0, t1), jnp.maximum(t0, t1)
    return dfx.VirtualBrownianTree(lo, hi, jnp.abs(dt0) / 2, shape, key)


def noise_tree(noise, y0) -> PyTree[Array]:
    """`noise` as a pytree of arrays with the structure of `y0` (a scalar is used for
    every leaf), each in the dtype of its leaf."""
    leaves, treedef = jtu.tree_flatten(y0)
    if not isinstance(noise, dict | list | tuple) and jnp.ndim(noise) == 0:
        sigmas = [noise] * len(leaves)
    else:
        sigmas = treedef.flatten_up_to(noise)
    return jtu.tree_unflatten(
        treedef,
        [jnp.asarray(s, dtype=a.dtype) for s, a in zip(sigmas, leaves)],
    )


def check_noise(call: str, noise, key, dt0, y0) -> None:
    """The concrete checks of `noise=`, `key=` and `dt0` (a `ValueError` naming the
    argument): `noise` a non-negative, finite scalar or a pytree of such values (arrays
    broadcastable to their leaves) with the structure of `y0`; a `key`; a `dt0`."""
    if noise is None:
        return
    if key is None:
        raise ValueError(
            f"`{call}(key=...)` must be a JAX random key (e.g. `jax.random.key(0)`) "
            "when `noise` is given: the Brownian path is drawn from it; got None."
        )
    if not _is_key(key):
        raise ValueError(
            f"`{call}(key=...)` must be a JAX random key (`jax.random.key(seed)`, or "
            f"a legacy `jax.random.PRNGKey`); got {_describe(key)}."
        )
    if dt0 is None:
        raise ValueError(
            f"`{call}(dt0=...)` must be given when `noise` is given: the noisy solve "
            "takes fixed steps of size `dt0` (e.g. `dt0=0.01`); got None."
        )
    leaves, treedef = jtu.tree_flatten(y0)
    scalar = not isinstance(noise, dict | list | tuple) and _ndim(noise) == 0
    if scalar:
        sigmas = [(noise, "")]
        shapes: list = [None]
    else:
        try:
            flat = treedef.flatten_up_to(noise)
        except (ValueError, TypeError):
            raise ValueError(
                f"`{call}(noise=...)` must be a number or a pytree with the structure "
                f"of the state `y0` ({treedef}); got {_describe(noise)}."
            ) from None
        paths = [jtu.keystr(p) for p, _ in jtu.tree_flatten_with_path(y0)[0]]
        sigmas = list(zip(flat, paths))
        shapes = [jnp.shape(a) for a in leaves]
    for (sigma, path), shape in zip(sigmas, shapes):
        name = f"noise{path}"
        if isinstance(sigma, jax.core.Tracer):
            continue
        try:
            a = np.asarray(sigma)
        except (TypeError, ValueError):
            a = np.asarray(None)
        if a.dtype == bool or not np.issubdtype(a.dtype, np.number):
            raise ValueError(
                f"`{call}({name}=...)` must be a real number or array; got "
                f"{_describe(sigma)}."
            )
        if shape is not None:
            try:
                np.broadcast_shapes(a.shape, shape)
            except ValueError:
                raise ValueError(
                    f"`{call}({name}=...)` must broadcast to its state leaf of shape "
                    f"{shape}; got shape {a.shape}."
                ) from None
        if not np.all(np.isfinite(a)) or np.any(a < 0):
            shown = repr(float(a)) if a.size == 1 else f"an array with min {a.min()}"
            raise ValueError(
                f"`{call}({name}=...)` must be finite and non-negative (the noise "
                f"amplitude sigma); got {shown}."
            )


def _ndim(x) -> int:
    try:
        return int(np.ndim(x)) if not isinstance(x, jax.Array) else x.ndim
    except Exception:
        return -1


def _is_key(key) -> bool:
    if not isinstance(key, jax.Array | np.ndarray):
        return False
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        return key.ndim == 0
    return key.dtype == jnp.uint32 and key.shape == (2,)


def _describe(x) -> str:
    if isinstance(x, jax.Array | np.ndarray):
        return f"an array of shape {x.shape} and dtype {x.dtype}"
    text = repr(x)
    return text if len(text) < 60 else type(x).__name__


def typed_key(key):
    """A typed key (legacy uint32 keys wrapped), for splitting."""
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        return key
    return jr.wrap_key_data(key)


def is_constant_step(controller) -> bool:
    return isinstance(controller, dfx.ConstantStepSize)
