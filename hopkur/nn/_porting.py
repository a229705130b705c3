r"""Porting a Kuramoto layer of the official AKOrN code (PyTorch) to
[`hopkur.nn.KuramotoLayer`][]: [`hopkur.nn.from_official_akorn`][].

The mapping (derived, with references to the official code, in
docs/how-to/porting.md, section "From the official AKOrN code"):

- `use_omega=False` adds $x$ itself to the official $dx/dt$; after the normalisation
  the step is hopkur's with $\gamma' = \gamma/(1+\gamma)$ and $\Omega = 0$.
- `use_omega=True` rotates each pair of consecutive channels by
  $\begin{pmatrix}0 & \omega\\ -\omega & 0\end{pmatrix}$, $\omega$ the norm of that
  pair's parameter row (of the one shared row with `global_omg=True`);
  $\gamma' = \gamma$.
- The biases of the coupling are a constant drive, folded into the stimulus (into the
  group norm's shift when there is one). In attention the key bias drops out of the
  softmax, the value and output biases give the constant drive
  $W_o b_v + b_o$, and the query bias becomes hopkur's positional embedding (the same
  row $p$ at every token, $p\,W_q = b_q$).
- The official attention interleaves heads (channel $k$ of $q, k, v$ in head
  $k \bmod h$); hopkur's blocks them (channel $j$ in head $\lfloor j/d_h\rfloor$). The
  maps are permuted accordingly; the oscillator channels are not.
"""

from collections.abc import Mapping

import equinox as eqx
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, ArrayLike, Float

from .._feature_couplings import AttentionCoupling, ConvCoupling
from ._layer import KuramotoLayer


_CONV = {"connectivity.weight", "connectivity.bias"}
_ATTENTION = {
    "connectivity.W_qkv.weight",
    "connectivity.W_qkv.bias",
    "connectivity.W_o.weight",
    "connectivity.W_o.bias",
}
_NORM = {"c_norm.weight", "c_norm.bias"}
_OMEGA = {"omg.omg_param"}


def interleaved_head_order(channels: int, heads: int) -> np.ndarray:
    r"""The channel permutation from interleaved to blocked attention heads.

    The official AKOrN attention splits $q, k, v$ as `(c nh)`: channel $k$ belongs to
    head $k \bmod h$, as its entry $\lfloor k/h\rfloor$. hopkur's
    [`hopkur.multi_head_attention`][] blocks them: channel $j$ belongs to head
    $\lfloor j/d_h\rfloor$ as its entry $j \bmod d_h$, $d_h = C/h$. Blocked channel
    $j$ is interleaved channel `order[j]` $= (j \bmod d_h)\,h + \lfloor j/d_h\rfloor$.

    **Arguments:**

    - `channels`: the number of channels $C$.
    - `heads`: the number of heads $h$ (dividing $C$).

    **Returns:**

    The integer array `order` of shape `(channels,)`: `q_blocked = q_interleaved[...,
    order]`.
    """
    if heads < 1 or channels % heads:
        raise ValueError(
            f"`interleaved_head_order(channels={channels}, heads={heads})` needs "
            "`heads >= 1` dividing `channels`."
        )
    width = channels // heads
    j = np.arange(channels)
    return (j % width) * heads + j // width


def _rotation_blocks(omega: np.ndarray, n: int) -> np.ndarray:
    # omega: (..., n // 2) angular speeds of the pairs of an oscillator -> (..., n, n)
    # with [[0, w], [-w, 0]] on the diagonal (the official OmegaLayer maps a pair
    # (x0, x1) to (w x1, -w x0)).
    out = np.zeros((*omega.shape[:-1], n, n))
    for a in range(n // 2):
        out[..., 2 * a, 2 * a + 1] = omega[..., a]
        out[..., 2 * a + 1, 2 * a] = -omega[..., a]
    return out


def _attention(
    get, channels: int, heads: int | None, num_tokens: int | None, dtype
) -> tuple[AttentionCoupling, np.ndarray]:
    if heads is None or num_tokens is None:
        raise ValueError(
            "`from_official_akorn(state=...)` holds an attention coupling: pass "
            "`heads=` (the official `heads`) and `num_tokens=` (height * width)."
        )
    if channels % heads:
        raise ValueError(
            f"`from_official_akorn(heads={heads})` must divide the {channels} channels."
        )
    qkv = get("connectivity.W_qkv.weight")
    out = get("connectivity.W_o.weight")
    if qkv.size != 3 * channels * channels or out.size != channels * channels:
        raise ValueError(
            "`from_official_akorn(state=...)`: the attention maps must be 1x1 "
            f"convolutions of shape ({3 * channels}, {channels}, 1, 1) and "
            f"({channels}, {channels}, 1, 1); got {qkv.shape} and {out.shape}."
        )
    qkv = qkv.reshape(3 * channels, channels)
    out = out.reshape(channels, channels)
    zeros = np.zeros(3 * channels)
    bias_qkv = get("connectivity.W_qkv.bias", zeros)
    bias_out = get("connectivity.W_o.bias", zeros[:channels])
    order = interleaved_head_order(channels, heads)
    # Official: q = W_q x + b_q (an (out, in) matrix acting on a channel column), heads
    # interleaved; hopkur: q = (x + p) @ query, heads blocked.
    query, key, value = (
        qkv[i * channels : (i + 1) * channels].T[:, order] for i in range(3)
    )
    output = out.T[order, :]
    bias_q, _, bias_v = (bias_qkv[i * channels : (i + 1) * channels] for i in range(3))
    # The key bias adds q_i . b_k to every logit of query i: the softmax ignores it.
    # The query bias b_q is carried by a positional embedding p with p @ query = b_q at
    # every token; p @ key_weight is then a key bias, which the softmax ignores too.
    position = np.zeros(channels)
    if np.any(bias_q != 0):
        position = np.linalg.lstsq(query.T, bias_q[order], rcond=None)[0]
        residual = np.max(np.abs(position @ query - bias_q[order]))
        if residual > 1e-6 * max(1.0, float(np.max(np.abs(bias_q)))):
            raise ValueError(
                "`from_official_akorn(state=...)`: the query map is singular, so its "
                "bias cannot be carried by hopkur's positional embedding (residual "
                f"{residual:.2e})."
            )
    # The value bias passes through the softmax (weights summing to 1) unchanged.
    drive = out @ bias_v + bias_out
    coupling = AttentionCoupling(
        channels, num_tokens, heads, dtype=dtype, key=jr.key(0)
    )
    tokens_position = np.broadcast_to(position, (num_tokens, channels))
    coupling = eqx.tree_at(
        lambda m: (m.query, m.key_weight, m.value, m.output, m.position),
        coupling,
        tuple(
            jnp.asarray(a, dtype=dtype)
            for a in (query, key, value, output, tokens_position)
        ),
    )
    return coupling, drive


def from_official_akorn(
    state: Mapping[str, ArrayLike],
    *,
    n: int,
    gamma: float | int = 1.0,
    steps: int = 8,
    heads: int | None = None,
    num_tokens: int | None = None,
    project: bool = True,
    prefix: str = "",
    dtype=None,
) -> tuple[KuramotoLayer, Float[Array, " c"]]:
    r"""Ports a Kuramoto layer (`KLayer`) of the official AKOrN code to a
    [`hopkur.nn.KuramotoLayer`][].

    `state` is the layer's `state_dict()` as NumPy arrays (`{k: v.numpy() ...}`), or a
    whole model's with `prefix` (e.g. `"layers.0.0."`). The keys tell the options
    apart: `connectivity.weight` (conv coupling) or `connectivity.W_qkv.*` (attention),
    `c_norm.*` (`c_norm="gn"`; absent for `"none"`), `omg.omg_param` (`use_omega=True`;
    shape `(2,)` with `global_omg=True`). Not portable, and refused: GTA attention
    (`gta=True`, keys `connectivity.mat_*`), `c_norm="sandb"` (apply its scale and
    bias to the stimulus yourself and port as `"none"`), `project=False`, odd `n` with
    `use_omega`.

    With `layer, shift = from_official_akorn(...)`, the official
    `klayer(x, c, T, gamma)` of one image and `layer(x, c + shift, steps=T)` agree:

    - states: official `(C, H, W)` is hopkur `(H, W, C)` for the conv coupling
      (`x.transpose(1, 2, 0)`) and `(H * W, C)` tokens for attention
      (`x.reshape(C, -1).T`); the official `xs[t]` is hopkur's `xs[t + 1]`.
    - energies: the official `es` are $[0, E'(x^{(0)}), \dots, E'(x^{(T-1)})]$ with
      $E'(x) = 2E(x) + \langle c', x\rangle$, $E$ hopkur's energies and
      $c'$ = `layer.normalise_stimulus(c + shift)`.

    **Arguments:**

    - `state`: the official parameters, NumPy arrays by `state_dict` key.
    - `n`: the oscillator dimension (official `n`). (Keyword only argument.)
    - `gamma`: the official step size $\gamma$. (Keyword only argument.)
    - `steps`: the layer's default number of updates $T$. (Keyword only argument.)
    - `heads`: the number of attention heads (attention only). (Keyword only
        argument.)
    - `num_tokens`: `height * width` of the feature map (attention only). (Keyword
        only argument.)
    - `project`: the official `apply_proj`; only `True` is portable. (Keyword only
        argument.)
    - `prefix`: the prefix of the layer's keys in `state`. (Keyword only argument.)
    - `dtype`: the floating dtype; JAX's default if `None`. (Keyword only argument.)

    **Returns:**

    `(layer, shift)`: the [`hopkur.nn.KuramotoLayer`][] and the constant `(C,)` to add
    to the official stimulus. `shift` is the coupling's bias drive with
    `c_norm="none"`, and zero with `c_norm="gn"` (there the drive is folded into
    `layer.norm_bias`, after the normalisation, where the official code adds it).
    """
    dtype = jnp.result_type(float) if dtype is None else jnp.dtype(dtype)
    keys = {k[len(prefix) :] for k in state if k.startswith(prefix)}
    unknown = sorted(keys - _CONV - _ATTENTION - _NORM - _OMEGA)
    if any(k.startswith("connectivity.mat_") for k in unknown):
        raise ValueError(
            "`from_official_akorn(state=...)` holds GTA attention (`gta=True`): its "
            "per-position rotations have no hopkur equivalent."
        )
    if unknown:
        raise ValueError(
            f"`from_official_akorn(state=...)` has keys hopkur cannot port: {unknown} "
            "(e.g. `c_norm='sandb'`: apply it to the stimulus and port as 'none')."
        )
    if not project:
        raise ValueError(
            "`from_official_akorn(project=False)`: without the projection the radial "
            "part of the drive rescales each oscillator's step; hopkur always projects."
        )

    def get(name, default=None):
        if prefix + name in state:
            return np.asarray(state[prefix + name], dtype=np.float64)
        if default is None:
            raise ValueError(
                f"`from_official_akorn(state=...)` lacks `{prefix + name}`."
            )
        return default

    if "connectivity.weight" in keys:
        channels = get("connectivity.weight").shape[0]
    elif "connectivity.W_o.weight" in keys:
        channels = get("connectivity.W_o.weight").shape[0]
    else:
        raise ValueError(
            "`from_official_akorn(state=...)` holds no coupling (`connectivity.weight` "
            f"or `connectivity.W_*` under prefix {prefix!r})."
        )
    if n < 2 or channels % n:
        raise ValueError(
            f"`from_official_akorn(n={n})` must be >= 2 and divide the {channels} "
            "channels."
        )
    if "omg.omg_param" in keys and n % 2:
        raise ValueError(
            f"`from_official_akorn(n={n})`: the official omega needs an even `n`."
        )

    if "connectivity.weight" in keys:
        weight = get("connectivity.weight")
        if weight.ndim != 4 or weight.shape[1] != channels:
            raise ValueError(
                "`from_official_akorn(state=...)`: `connectivity.weight` must have "
                f"shape (C, C, k, k); got {weight.shape}."
            )
        coupling = ConvCoupling(channels, weight.shape[-1], dtype=dtype, key=jr.key(0))
        coupling = eqx.tree_at(
            lambda m: m.weight, coupling, jnp.asarray(weight, dtype=dtype)
        )
        drive = get("connectivity.bias", np.zeros(channels))
    else:
        coupling, drive = _attention(get, channels, heads, num_tokens, dtype)

    omega = None
    if "omg.omg_param" in keys:
        param = get("omg.omg_param")
        speeds = np.linalg.norm(param, axis=-1)
        if param.shape == (2,):  # global_omg=True: one speed for every pair
            omega = _rotation_blocks(np.full(n // 2, speeds), n)
        elif param.shape == (channels // 2, 2):
            omega = _rotation_blocks(speeds.reshape(channels // n, n // 2), n)
        else:
            raise ValueError(
                "`from_official_akorn(state=...)`: `omg.omg_param` must have shape "
                f"(2,) or ({channels // 2}, 2); got {param.shape}."
            )
        step = float(gamma)
    else:
        # The official layer adds x itself: x + g (x + P y) = (1 + g) (x + g/(1+g) P y).
        step = float(gamma) / (1.0 + float(gamma))

    layer = KuramotoLayer(
        coupling,
        channels,
        n,
        steps=steps,
        gamma=step,
        omega="none" if omega is None else ("shared" if omega.ndim == 2 else "group"),
        norm="group" if "c_norm.weight" in keys else None,
        dtype=dtype,
        key=jr.key(0),
    )
    if omega is not None:
        layer = eqx.tree_at(
            lambda m: m.raw_omega, layer, jnp.asarray(omega, dtype=dtype)
        )
    shift = drive
    if "c_norm.weight" in keys:
        norm_bias = get("c_norm.bias") + drive
        layer = eqx.tree_at(
            lambda m: (m.norm_weight, m.norm_bias),
            layer,
            (
                jnp.asarray(get("c_norm.weight"), dtype=dtype),
                jnp.asarray(norm_bias, dtype=dtype),
            ),
        )
        shift = np.zeros(channels)
    return layer, jnp.asarray(shift, dtype=dtype)
