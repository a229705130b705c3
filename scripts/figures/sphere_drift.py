"""Oscillators stay on their spheres: norm drift over t in [0, 1000].

A Kuramoto network with per-oscillator natural frequencies (N = 32 oscillators in D = 3,
dense random coupling, a field: everything keeps moving), integrated with Tsit5 and an
adaptive controller (rtol 1e-6, atol 1e-8) in float32 and float64, with and without the
retraction that `hopkur.simulate` applies after every step. Plotted: the largest
deviation max_i | |x_i| - 1 | at 400 saved times.

    python scripts/figures/sphere_drift.py          # t1 = 1000, ~1 min
    python scripts/figures/sphere_drift.py --fast   # t1 = 100
"""

import argparse
import time
from pathlib import Path

import diffrax as dfx
import jax
import jax.numpy as jnp
import matplotlib


matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

import hopkur


FIGURES = Path(__file__).resolve().parents[2] / "docs" / "figures"


def main() -> None:
    assert __doc__ is not None
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fast", action="store_true", help="small, quick run")
    args = parser.parse_args()
    jax.config.update("jax_enable_x64", True)

    t1 = 100.0 if args.fast else 1000.0
    n, d = 32, 3
    rng = np.random.default_rng(0)
    w = rng.standard_normal((n, n)) / np.sqrt(n)
    field = rng.standard_normal((n, d))
    omega = rng.standard_normal((n, d, d))
    x = rng.standard_normal((n, d))
    x0 = x / np.linalg.norm(x, axis=-1, keepdims=True)

    fig, ax = plt.subplots(figsize=(7, 4.2))
    styles = {
        ("float64", True): ("tab:blue", "-"),
        ("float64", False): ("tab:blue", "--"),
        ("float32", True): ("tab:red", "-"),
        ("float32", False): ("tab:red", "--"),
    }
    print(f"N = {n}, D = {d}, t in [0, {t1:g}], Tsit5, rtol 1e-6, atol 1e-8")
    for dtype in (jnp.float64, jnp.float32):
        model = hopkur.Kuramoto(
            hopkur.DenseCoupling(jnp.asarray(w, dtype)),
            field=jnp.asarray(field, dtype),
            omega=jnp.asarray(omega, dtype),
        )
        zero = jnp.asarray(0.0, dtype)
        ts = jnp.linspace(zero, zero + t1, 400)
        for retract in (True, False):
            start = time.perf_counter()
            sol = hopkur.simulate(
                model,
                jnp.asarray(x0, dtype),
                t0=zero,
                t1=zero + t1,
                saveat=dfx.SaveAt(ts=ts),
                stepsize_controller=dfx.PIDController(rtol=1e-6, atol=1e-8),
                max_steps=1_000_000,
                retract=retract,
            )
            assert sol.ys is not None
            drift = np.max(
                np.abs(np.linalg.norm(np.asarray(sol.ys), axis=-1) - 1), axis=-1
            )
            name = jnp.dtype(dtype).name
            steps = int(sol.stats["num_steps"])
            print(
                f"{name}  retract={retract!s:5}  max drift {drift.max():.2e}  "
                f"final {drift[-1]:.2e}  steps {steps}  "
                f"{time.perf_counter() - start:.1f} s"
            )
            color, ls = styles[(name, retract)]
            label = f"{name}, {'retracted' if retract else 'no retraction'}"
            # Exact zeros (a norm of exactly 1) cannot be drawn on a log axis.
            ax.semilogy(
                np.asarray(ts),
                np.maximum(drift, 1e-18),
                color=color,
                ls=ls,
                label=label,
            )
    for name, eps in (
        ("float32", float(np.finfo(np.float32).eps)),
        ("float64", float(np.finfo(np.float64).eps)),
    ):
        ax.axhline(eps, color="0.7", lw=0.8, ls=":")
        ax.text(
            0.01 * t1, eps * 1.6, f"{name} machine epsilon", color="0.5", fontsize=8
        )
    ax.set(
        xlabel="t",
        ylabel=r"$\max_i\,|\,\|x_i\| - 1\,|$",
        ylim=(1e-18, 1e-1),
        title="oscillator norms along a long solve",
    )
    ax.legend(loc="upper left", fontsize=8, ncol=2)
    FIGURES.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(FIGURES / "sphere_drift.png", dpi=120)
    print(f"wrote {FIGURES / 'sphere_drift.png'}")


if __name__ == "__main__":
    main()
