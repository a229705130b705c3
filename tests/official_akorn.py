"""A NumPy transcription of the official AKOrN Kuramoto layer's forward pass.

Written from a reading of the official PyTorch code (autonomousvision/akorn,
source/layers/klayer.py `KLayer`, `OmegaLayer`; source/layers/kutils.py `reshape`,
`normalize`; source/layers/common_layers.py `Attention` with `weight="conv"`,
`gta=False`), not copied from it: PyTorch is not installed here. Its conventions are the
official ones, which differ from hopkur's:

- batches of images `(B, C, H, W)`, oscillator groups of `n` consecutive channels;
- with `use_omega=False` the rotation term is `nn.Identity`, so x itself is added to
  dx/dt;
- the attention splits q, k, v as `(c nh)`: channel k belongs to head k mod heads;
- the coupling's biases (conv bias; attention biases) are part of J(x);
- the logged energy is `-sum(x * (J(x) + c))` of the state each update starts from, with
  a zero placeholder first.

Also used by tests/data/make_official_akorn_states.py, which records its states.
"""

import numpy as np


def groups(x: np.ndarray, n: int) -> np.ndarray:
    """`(B, C, ...)` -> `(B, C // n, n, ...)` (kutils.reshape for images)."""
    return x.reshape(x.shape[0], x.shape[1] // n, n, *x.shape[2:])


def normalize(x: np.ndarray, n: int) -> np.ndarray:
    """Each group of `n` channels to unit norm (kutils.normalize; F.normalize's eps)."""
    g = groups(x, n)
    norm = np.sqrt(np.sum(g * g, axis=2, keepdims=True))
    return (g / np.maximum(norm, 1e-12)).reshape(x.shape)


def group_norm(c, num_groups, weight, bias, eps=1e-5):
    """nn.GroupNorm(num_groups, C, affine=True) over `(B, C, H, W)`."""
    b = c.shape[0]
    g = c.reshape(b, num_groups, -1)
    mean = g.mean(axis=-1, keepdims=True)
    var = g.var(axis=-1, keepdims=True)
    out = ((g - mean) / np.sqrt(var + eps)).reshape(c.shape)
    return out * weight[None, :, None, None] + bias[None, :, None, None]


def conv2d(x, weight, bias):
    """nn.Conv2d(C, C, k, stride 1, padding k // 2): cross-correlation, zero padding."""
    k = weight.shape[-1]
    pad = k // 2
    height, width = x.shape[2:]
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    out = np.zeros((x.shape[0], weight.shape[0], height, width))
    for u in range(k):
        for v in range(k):
            window = xp[:, :, u : u + height, v : v + width]
            out += np.einsum("oc,bchw->bohw", weight[:, :, u, v], window)
    return out + bias[None, :, None, None]


def attention(x, w_qkv, b_qkv, w_o, b_o, heads):
    """common_layers.Attention(weight="conv", kernel_size=1, gta=False) on images."""
    b, c, height, width = x.shape
    d = c // heads
    qkv = conv2d(x, w_qkv, b_qkv)
    q, k, v = qkv[:, :c], qkv[:, c : 2 * c], qkv[:, 2 * c :]

    def split(t):  # "b (c nh) h w -> b nh (h w) c": channel = entry * heads + head
        return t.reshape(b, d, heads, height * width).transpose(0, 2, 3, 1)

    q, k, v = split(q), split(k), split(v)
    logits = q @ k.transpose(0, 1, 3, 2) / np.sqrt(d)
    logits = logits - logits.max(axis=-1, keepdims=True)
    weights = np.exp(logits)
    weights = weights / weights.sum(axis=-1, keepdims=True)
    o = weights @ v  # (b, nh, hw, d)
    o = o.transpose(0, 3, 1, 2).reshape(b, c, height, width)  # "... -> b (c nh) h w"
    return conv2d(o, w_o, b_o)


def omega_term(x, omg_param):
    """OmegaLayer: each pair (x0, x1) of consecutive channels -> (w x1, -w x0), w the
    norm of the pair's parameter row (of the single row if `global_omg`)."""
    b, c = x.shape[:2]
    pairs = x.reshape(b, c // 2, 2, *x.shape[2:])
    if omg_param.shape == (2,):
        w = np.full(c // 2, np.linalg.norm(omg_param))
    else:
        w = np.linalg.norm(omg_param, axis=1)
    w = w[None, :, None, None]
    out = np.stack([w * pairs[:, :, 1], -w * pairs[:, :, 0]], axis=2)
    return out.reshape(x.shape)


def coupling(params, x, heads):
    if "connectivity.weight" in params:
        return conv2d(x, params["connectivity.weight"], params["connectivity.bias"])
    return attention(
        x,
        params["connectivity.W_qkv.weight"],
        params["connectivity.W_qkv.bias"],
        params["connectivity.W_o.weight"],
        params["connectivity.W_o.bias"],
        heads,
    )


def klayer_forward(params, x, c, *, n, steps, gamma, heads=None):
    """KLayer.forward(x, c, T=steps, gamma) with `apply_proj=True`.

    **Returns:** `(xs, es)`: the states after each update, `(steps, B, C, H, W)`, and
    the logged energies, `(steps + 1, B)`, the first a zero placeholder.
    """
    if "c_norm.weight" in params:
        c = group_norm(
            c, c.shape[1] // n, params["c_norm.weight"], params["c_norm.bias"]
        )
    x = normalize(x, n)
    xs, es = [], [np.zeros(x.shape[0])]
    for _ in range(steps):
        y = coupling(params, x, heads) + c
        # use_omega=False makes the rotation nn.Identity: x itself is added.
        omg_x = (
            omega_term(x, params["omg.omg_param"]) if "omg.omg_param" in params else x
        )
        yg, xg = groups(y, n), groups(x, n)
        sim = xg * yg
        projected = yg - np.sum(sim, axis=2, keepdims=True) * xg
        dxdt = omg_x + projected.reshape(x.shape)
        x = normalize(x + gamma * dxdt, n)
        xs.append(x)
        es.append(-sim.reshape(x.shape[0], -1).sum(-1))
    return np.stack(xs), np.stack(es)


def random_params(rng, *, channels, n, kind, ksize=3, c_norm, omega):
    """A random official-format parameter set (`state_dict` keys of a `KLayer`).

    `kind` is "conv" or "attn"; `c_norm` "gn" or "none"; `omega` None, "pairs"
    (`use_omega=True`) or "global" (`use_omega=True, global_omg=True`).
    """
    p = {}
    if kind == "conv":
        std = 1.0 / np.sqrt(channels * ksize**2)
        p["connectivity.weight"] = std * rng.normal(
            size=(channels, channels, ksize, ksize)
        )
        p["connectivity.bias"] = 0.5 * rng.normal(size=channels)
    else:
        std = 1.0 / np.sqrt(channels)
        p["connectivity.W_qkv.weight"] = std * rng.normal(
            size=(3 * channels, channels, 1, 1)
        )
        p["connectivity.W_qkv.bias"] = 0.5 * rng.normal(size=3 * channels)
        p["connectivity.W_o.weight"] = std * rng.normal(size=(channels, channels, 1, 1))
        p["connectivity.W_o.bias"] = 0.5 * rng.normal(size=channels)
    if c_norm == "gn":
        p["c_norm.weight"] = 1.0 + 0.2 * rng.normal(size=channels)
        p["c_norm.bias"] = 0.2 * rng.normal(size=channels)
    if omega == "pairs":
        p["omg.omg_param"] = 0.5 * rng.normal(size=(channels // 2, 2))
    elif omega == "global":
        p["omg.omg_param"] = 0.5 * rng.normal(size=2)
    return p


def images_to_hopkur(x: np.ndarray, kind: str) -> np.ndarray:
    """`(..., C, H, W)` -> hopkur states: `(..., H, W, C)` (conv) or `(..., H*W, C)`."""
    moved = np.moveaxis(x, -3, -1)
    if kind == "conv":
        return moved
    return moved.reshape(*moved.shape[:-3], -1, moved.shape[-1])
