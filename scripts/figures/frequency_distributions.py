"""Kuramoto transitions for Gaussian and uniform frequencies against self-consistency.

D = 2, all-to-all coupling K/N (`hopkur.MeanFieldCoupling(K)`), N natural frequencies
from `hopkur.gaussian_frequencies` (standard deviation w) and
`hopkur.uniform_frequencies` (on [-w, w]), deterministic quantiles. Against the root of
Kuramoto's self-consistency equation r = K r int cos^2(theta) g(K r sin theta) dtheta
(`hopkur.theory.order_parameter`), with K_c = 2 / (pi g(0))
(`hopkur.theory.critical_coupling`): a square-root onset for the Gaussian, a jump to
r = pi/4 for the uniform density. Both families run as one batch of models, from random
phases; r is averaged over the second half of the run. Writes
docs/figures/frequency_distributions.png and frequency_distributions.json.

    python scripts/figures/frequency_distributions.py          # N = 10000, ~3 min
    python scripts/figures/frequency_distributions.py --fast   # N = 2000
"""

import argparse
import json
import time
from pathlib import Path

import diffrax as dfx
import equinox as eqx
import jax
import jax.numpy as jnp
import matplotlib


matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

import hopkur
import hopkur.theory as theory


FIGURES = Path(__file__).resolve().parents[2] / "docs" / "figures"


def main() -> None:
    assert __doc__ is not None
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fast", action="store_true", help="small, quick run")
    args = parser.parse_args()
    jax.config.update("jax_enable_x64", True)

    n, t1 = (2000, 80.0) if args.fast else (10_000, 200.0)
    width, dt = 1.0, 0.05
    ratios = np.array([0.6, 0.9, 1.1, 1.25, 1.5, 2.0, 3.0])  # K / K_c
    families = {
        "gaussian": (theory.Gaussian(width), hopkur.gaussian_frequencies(n, width)),
        "uniform": (theory.Uniform(width), hopkur.uniform_frequencies(n, width)),
    }
    strengths, omegas = [], []
    for distribution, freqs in families.values():
        k_c = theory.critical_coupling(distribution)
        strengths.append(ratios * k_c)
        omegas.append(np.broadcast_to(freqs, (len(ratios), n)))
    k = np.concatenate(strengths)
    omega = jax.vmap(hopkur.planar_rotations)(jnp.asarray(np.concatenate(omegas)))
    theta = np.random.default_rng(0).uniform(0, 2 * np.pi, n)
    x0 = np.stack([np.cos(theta), np.sin(theta)], axis=-1)
    x0s = jnp.asarray(np.broadcast_to(x0, (len(k), n, 2)))
    models = eqx.filter_vmap(
        lambda s, o: hopkur.Kuramoto(hopkur.MeanFieldCoupling(strength=s), omega=o)
    )(jnp.asarray(k), omega)
    ts = jnp.linspace(0.0, t1, 201)

    start = time.perf_counter()
    sol = hopkur.simulate_batch(
        models,
        x0s,
        batch_model=True,
        t1=t1,
        dt0=dt,
        solver=dfx.Heun(),
        stepsize_controller=dfx.ConstantStepSize(),
        saveat=dfx.SaveAt(ts=ts, fn=lambda t, y, args: hopkur.order_parameter(y)),
        max_steps=int(t1 / dt) + 10,
    )
    assert sol.ys is not None
    r_t = np.asarray(jax.block_until_ready(sol.ys))
    seconds = time.perf_counter() - start
    late = np.asarray(ts) >= t1 / 2
    r_all = r_t[:, late].mean(axis=1).reshape(len(families), len(ratios))
    std_all = r_t[:, late].std(axis=1).reshape(len(families), len(ratios))
    print(f"N = {n}, width = {width}, t1 = {t1}, dt = {dt}: {seconds:.1f} s")

    record = {"n": n, "width": width, "t1": t1, "dt": dt, "seconds": seconds}
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    for ax, (name, (distribution, _)), strength, r, spread in zip(
        axes, families.items(), strengths, r_all, std_all
    ):
        k_c = theory.critical_coupling(distribution)
        predicted = theory.order_parameter(strength, distribution)
        above = ratios > 1
        deviation = float(np.max(np.abs(r - predicted)[above]))
        print(f"{name}: K_c = {k_c:.4f}")
        print("     K    r (sim)   r (theory)")
        for row in zip(strength, r, predicted):
            print("{:6.3f}   {:7.4f}   {:9.4f}".format(*row))
        print(f"  max |r_sim - r_theory| above K_c: {deviation:.4f}")
        record[name] = {
            "critical_coupling": k_c,
            "strength": strength.tolist(),
            "r_sim": r.tolist(),
            "r_sim_time_std": spread.tolist(),
            "r_theory": predicted.tolist(),
            "max_abs_deviation_above_kc": deviation,
        }
        grid = np.linspace(0.01, strength.max() * 1.03, 600)
        ax.plot(
            grid,
            theory.order_parameter(grid, distribution),
            "k-",
            lw=1.5,
            label="self-consistency",
        )
        ax.errorbar(
            strength,
            r,
            yerr=spread,
            fmt="o",
            color="tab:red",
            ms=5,
            capsize=2,
            label=f"hopkur, N = {n}",
        )
        ax.axhline(np.sqrt(np.pi / (4 * n)), color="0.6", ls=":", lw=1)
        ax.axvline(k_c, color="0.7", ls="--", lw=1)
        ax.set(
            xlabel="coupling strength K",
            title=f"{name} frequencies, width {width:g}, $K_c$ = {k_c:.3f}",
            ylim=(-0.02, 1.0),
        )
        ax.legend(loc="lower right", fontsize=8)
    axes[0].set_ylabel("time-averaged r")
    FIGURES.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(FIGURES / "frequency_distributions.png", dpi=120)
    (FIGURES / "frequency_distributions.json").write_text(
        json.dumps(record, indent=1) + "\n"
    )
    print(f"wrote {FIGURES / 'frequency_distributions.png'} and .json")


if __name__ == "__main__":
    main()
