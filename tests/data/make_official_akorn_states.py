"""Writes `official_akorn_states.npz`: states recorded from a NumPy transcription of the
official AKOrN Kuramoto layer (tests/official_akorn.py; PyTorch is not installed here),
for `tests/test_porting_akorn.py`.

Four random official-format parameter sets (`KLayer.state_dict()` keys; 8 channels,
oscillator dimension n = 4, a 4x4 image, a batch of 2, T = 3 updates):

- `conv_gn`: conv coupling (3x3, with bias), `c_norm="gn"`, `use_omega=False`,
  gamma = 1 (the object-discovery defaults of train_obj.py);
- `attn_none`: attention (2 heads, with biases), `c_norm="none"`, `use_omega=False`,
  gamma = 1 (the Tetrominoes attention run of scripts/synths.md, without GTA);
- `conv_none_omega`: conv, `c_norm="none"`, `use_omega=True` (one speed per channel
  pair), gamma = 0.5;
- `attn_gn_global_omega`: attention, `c_norm="gn"`, `use_omega=True, global_omg=True`,
  gamma = 1.

For each case `<case>/<state_dict key>` holds a parameter, and `<case>/x0`, `<case>/c`
(`(B, C, H, W)`), `<case>/xs` (`(T, B, C, H, W)`, the states after each update),
`<case>/es` (`(T + 1, B)`, the logged energies), `<case>/gamma` and `<case>/heads` the
rest. Regenerate (only when the reference is meant to change) from the repository root:

    python tests/data/make_official_akorn_states.py
"""

import sys
from pathlib import Path

import numpy as np


ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.official_akorn import klayer_forward, random_params  # noqa: E402


CHANNELS, N, HEADS, SIZE, BATCH, STEPS = 8, 4, 2, 4, 2, 3
CASES = {
    "conv_gn": dict(kind="conv", c_norm="gn", omega=None, gamma=1.0),
    "attn_none": dict(kind="attn", c_norm="none", omega=None, gamma=1.0),
    "conv_none_omega": dict(kind="conv", c_norm="none", omega="pairs", gamma=0.5),
    "attn_gn_global_omega": dict(kind="attn", c_norm="gn", omega="global", gamma=1.0),
}


def main() -> None:
    rng = np.random.default_rng(22)
    out = {}
    for name, case in CASES.items():
        params = random_params(
            rng,
            channels=CHANNELS,
            n=N,
            kind=case["kind"],
            c_norm=case["c_norm"],
            omega=case["omega"],
        )
        x0 = rng.normal(size=(BATCH, CHANNELS, SIZE, SIZE))
        c = rng.normal(size=(BATCH, CHANNELS, SIZE, SIZE))
        xs, es = klayer_forward(
            params, x0, c, n=N, steps=STEPS, gamma=case["gamma"], heads=HEADS
        )
        for key, value in params.items():
            out[f"{name}/{key}"] = value
        out.update(
            {
                f"{name}/x0": x0,
                f"{name}/c": c,
                f"{name}/xs": xs,
                f"{name}/es": es,
                f"{name}/gamma": np.asarray(case["gamma"]),
                f"{name}/heads": np.asarray(HEADS),
            }
        )
    path = Path(__file__).parent / "official_akorn_states.npz"
    np.savez_compressed(path, **out)
    print(f"wrote {path} ({path.stat().st_size} bytes, {len(CASES)} cases)")


if __name__ == "__main__":
    main()
