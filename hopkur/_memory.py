r"""Memory retrieval and capacity: the classical discrete Hopfield network
(`sign_retrieve`) and the measurement of retrieval versus load in a Hebbian network
(`capacity_sweep`). The pattern maths they use (Hebb's rule, corruption, overlaps) is in
`hopkur._patterns`.

`capacity_sweep` computes with JAX (compiled, on any device) and then summarises on the
host with NumPy: call it outside `jit`.
"""

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import equinox as eqx
import jax
import jax.lax as lax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray

from ._hopfield import Hopfield
from ._integrate import relax
from ._lagrangians import lagrangian_tanh
from ._misc import ensure_finite, numpy_rng
from ._patterns import corrupt_patterns


def sign_retrieve(
    weights: Float[ArrayLike, "n n"],
    s0: Float[ArrayLike, "*batch n"],
    *,
    key: PRNGKeyArray,
    sweeps: int = 20,
    asynchronous: bool = True,
) -> Float[Array, "*batch n"]:
    r"""The classical discrete Hopfield network: $s_i \leftarrow
    \operatorname{sign}(\sum_j W_{ij} s_j)$ (a unit with zero field keeps its sign).

    Asynchronous updates (one unit at a time, a fresh random order every sweep) always
    descend $E = -\frac12 s^\top W s$ and stop at a fixed point; synchronous updates
    (all units at once) can end in 2-cycles.

    **Arguments:**

    - `weights`: symmetric weights, shape `(N, N)`, e.g. [`hopkur.hebbian_weights`][].
    - `s0`: initial $\pm1$ states, shape `(..., N)`.
    - `key`: a `jax.random.key` for the update order. (Keyword only argument.)
    - `sweeps`: the number of sweeps over all units. (Keyword only argument.)
    - `asynchronous`: one unit at a time (default) or all at once. (Keyword only
      argument.)

    **Returns:**

    The states after `sweeps` sweeps.
    """
    weights, s0 = jnp.asarray(weights), jnp.asarray(s0)
    # checked here, outside the compiled function: concrete values give a ValueError
    weights = ensure_finite("hopkur.sign_retrieve", "weights", weights)
    s0 = ensure_finite("hopkur.sign_retrieve", "s0", s0)
    return _sign_retrieve(weights, s0, key, sweeps, asynchronous)


@eqx.filter_jit
def _sign_retrieve(weights, s0, key, sweeps: int, asynchronous: bool):
    n = weights.shape[0]

    def sign(h, s):
        return jnp.where(h > 0, 1.0, jnp.where(h < 0, -1.0, s)).astype(s.dtype)

    if not asynchronous:

        def sync(s, _):
            return sign(s @ weights, s), None

        s, _ = lax.scan(sync, s0, None, length=sweeps)
        return s

    def sweep(s, k):
        def update(s, i):
            h = s @ weights[i]
            return s.at[..., i].set(sign(h, s[..., i])), None

        s, _ = lax.scan(update, s, jr.permutation(k, n))
        return s, None

    s, _ = lax.scan(sweep, s0, jr.split(key, sweeps))
    return s


@eqx.filter_jit
def _retrieval_overlaps(weights, targets, key, index, flip_fraction, settings):
    """One retrieval trial, compiled as a whole: corrupt the cues, run the network,
    return the overlap of each final sign state with its cue's pattern."""
    variant, sweeps, rtol, atol, max_steps = settings
    ckey, rkey = jr.split(jr.fold_in(key, index))
    s0 = corrupt_patterns(targets, flip_fraction, key=ckey)
    n = weights.shape[0]
    if variant in ("sign", "sign-sync"):
        s = sign_retrieve(
            weights, s0, key=rkey, sweeps=sweeps, asynchronous=variant == "sign"
        )
    else:
        model = Hopfield(weights, jnp.zeros((n,), weights.dtype), lagrangian_tanh)
        relaxed = jax.vmap(
            lambda x: relax(
                model, x, rtol=rtol, atol=atol, max_steps=max_steps, throw=False
            )
        )(s0)
        s = jnp.where(relaxed >= 0, 1.0, -1.0).astype(s0.dtype)
    return jnp.sum(s * targets, axis=-1) / n


@dataclasses.dataclass(frozen=True)
class CapacitySweep:
    """Retrieval versus load in a Hebbian Hopfield network; made by
    [`hopkur.capacity_sweep`][]. `str(sweep)` prints a table.

    **Fields:**

    - `n`: the number of units $N$.
    - `loads`: the loads $\\alpha = P/N$ (as realised: `num_patterns / n`).
    - `num_patterns`: the number of stored patterns $P$ at each load.
    - `mean_overlap`: the mean final overlap $m$ with the cued pattern.
    - `retrieved_fraction`: the fraction of cues retrieved ($m \\ge$ `threshold`).
    - `variant`, `gain`, `flip_fraction`, `threshold`: the settings.
    """

    n: int
    loads: np.ndarray
    num_patterns: np.ndarray
    mean_overlap: np.ndarray
    retrieved_fraction: np.ndarray
    variant: str
    gain: float | None
    flip_fraction: float
    threshold: float

    @property
    def critical_load(self) -> float | None:
        r"""The load at which the retrieved fraction first falls below 1/2 (linear
        interpolation between grid points), or `None` if it never does."""
        frac = self.retrieved_fraction
        below = np.flatnonzero(frac < 0.5)
        if below.size == 0:
            return None
        k = int(below[0])
        if k == 0:
            return float(self.loads[0])
        a0, a1, f0, f1 = self.loads[k - 1], self.loads[k], frac[k - 1], frac[k]
        return float(a0 + (f0 - 0.5) * (a1 - a0) / (f0 - f1))

    def __str__(self) -> str:
        name = (
            self.variant if self.gain is None else f"{self.variant}, gain {self.gain:g}"
        )
        lines = [
            f"Hebbian Hopfield retrieval, N = {self.n} ({name}), "
            f"{self.flip_fraction:.0%} of each cue flipped",
            "  load P/N   patterns   mean overlap   retrieved",
        ]
        for a, p, m, f in zip(
            self.loads, self.num_patterns, self.mean_overlap, self.retrieved_fraction
        ):
            lines.append(f"  {a:8.3f}   {p:8d}   {m:12.3f}   {f:9.2f}")
        crit = self.critical_load
        lines.append(
            "  critical load: "
            + ("not reached" if crit is None else f"{crit:.3f} (retrieved < 1/2)")
        )
        return "\n".join(lines)


def capacity_sweep(
    n: int,
    loads: Sequence[float],
    *,
    key: PRNGKeyArray,
    variant: str = "sign",
    gain: float = 10.0,
    flip_fraction: float = 0.1,
    trials: int = 2,
    cues: int = 32,
    threshold: float = 0.95,
    sweeps: int = 20,
    rtol: float = 1e-4,
    atol: float = 1e-6,
    max_steps: int = 2000,
    progress: Callable[[int, int], Any] | None = None,
) -> CapacitySweep:
    r"""Measures memory retrieval versus load $\alpha = P/N$ in a Hopfield network with
    Hebbian weights.

    For each load: store $P = \operatorname{round}(\alpha N)$ random $\pm1$ patterns
    with [`hopkur.hebbian_weights`][], cue the network with `cues` of them (each with
    `flip_fraction` of its signs flipped, [`hopkur.corrupt_patterns`][]), run it, and
    measure the overlap $m$ of the sign of the final state with the cued pattern
    ([`hopkur.pattern_overlaps`][]). Repeated for `trials` independent pattern sets.
    Every load uses the same array shapes, so the retrieval compiles once.

    Variants:

    - `"sign"`: the classical network with asynchronous sign updates
      ([`hopkur.sign_retrieve`][]); its retrieval collapses near the critical load
      $\alpha_c \approx 0.138$ (Amit, Gutfreund & Sompolinsky, 1985) as $N\to\infty$.
    - `"sign-sync"`: the same with synchronous updates.
    - `"tanh"`: the continuous network `hopkur.Hopfield(gain * W, 0, lagrangian_tanh)`
      ($\dot x = \beta W \tanh x - x$), relaxed to a fixed point with
      [`hopkur.relax`][] from the cue; the gain $\beta$ plays the role of an inverse
      temperature, and the capacity falls as $\beta$ decreases.

    **Arguments:**

    - `n`: the number of units $N$.
    - `loads`: the loads $\alpha$ to measure.
    - `key`: a `jax.random.key`. (Keyword only argument, as all below.)
    - `variant`: `"sign"`, `"sign-sync"` or `"tanh"`.
    - `gain`: the gain $\beta$ of the `"tanh"` variant.
    - `flip_fraction`: the fraction of each cue's entries flipped.
    - `trials`: the number of independent pattern sets per load.
    - `cues`: patterns cued per trial (drawn without replacement when $P \ge$ `cues`).
    - `threshold`: the overlap counted as a retrieval.
    - `sweeps`: update sweeps of the sign variants.
    - `rtol`, `atol`, `max_steps`: the relaxation of the `"tanh"` variant (cues that
      do not settle within `max_steps` are judged at their last state).
    - `progress`: an optional callback `progress(done, total)` after each load.

    **Returns:**

    A [`hopkur.CapacitySweep`][].
    """
    if variant not in ("sign", "sign-sync", "tanh"):
        raise ValueError(
            "`hopkur.capacity_sweep(variant=...)` must be 'sign', 'sign-sync' or "
            f"'tanh'; got {variant!r}."
        )
    if n < 2 or cues < 1 or trials < 1:
        raise ValueError(
            "`hopkur.capacity_sweep` needs n >= 2, cues >= 1 and trials >= 1; got "
            f"n={n}, cues={cues}, trials={trials}."
        )
    loads = [float(a) for a in loads]
    if not loads or min(loads) <= 0:
        raise ValueError(
            f"`hopkur.capacity_sweep(loads=...)` must be positive; got {loads}."
        )
    rng = numpy_rng(key)
    dtype = jnp.result_type(float)
    counts, overlaps, retrieved = [], [], []
    for index, load in enumerate(loads):
        p = max(1, int(round(load * n)))
        ms = []
        for trial in range(trials):
            xi = rng.choice(np.array([-1.0, 1.0]), size=(p, n))
            chosen = rng.choice(p, size=cues, replace=p < cues)
            targets = jnp.asarray(xi[chosen], dtype)
            # Hebb's rule in NumPy: P changes with the load, and eager JAX would
            # compile a matrix product for every new shape.
            w = xi.T @ xi / n
            np.fill_diagonal(w, 0.0)
            weights = jnp.asarray(w, dtype)
            if variant == "tanh":
                weights = gain * weights
            m = _retrieval_overlaps(
                weights,
                targets,
                key,
                jnp.asarray(index * trials + trial),
                flip_fraction,
                (variant, sweeps, rtol, atol, max_steps),
            )
            ms.append(np.asarray(m))
        m = np.concatenate(ms)
        counts.append(p)
        overlaps.append(float(np.mean(m)))
        retrieved.append(float(np.mean(m >= threshold)))
        if progress is not None:
            progress(index + 1, len(loads))
    counts_arr = np.asarray(counts, dtype=int)
    return CapacitySweep(
        n=n,
        loads=counts_arr / n,
        num_patterns=counts_arr,
        mean_overlap=np.asarray(overlaps),
        retrieved_fraction=np.asarray(retrieved),
        variant=variant,
        gain=gain if variant == "tanh" else None,
        flip_fraction=flip_fraction,
        threshold=threshold,
    )
