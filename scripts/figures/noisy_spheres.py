"""Noisy identical oscillators on S^1, S^2 and S^3 against the von Mises-Fisher theory.

All-to-all coupling K/N (`hopkur.MeanFieldCoupling(K)`), no natural frequencies,
isotropic tangent noise of amplitude sigma (`hopkur.simulate(noise=sigma, key=...)`,
Stratonovich, Heun with a fixed step). As N -> infinity the stationary density is von
Mises-Fisher with r = A_D(2 K r / sigma^2) and K_c = D sigma^2 / 2
(`hopkur.theory.noisy_sphere_order_parameter`). Every K and seed runs as one batch of
models (`hopkur.simulate_batch(..., batch_model=True)`, one Brownian path per
trajectory), from the synchronised state; r is averaged over the second half of the
run. Error bars: the spread of the time averages over the seeds plus, for one seed,
the standard error of the time average. Writes docs/figures/noisy_spheres.png and
noisy_spheres.json.

    python scripts/figures/noisy_spheres.py          # N = 5000, 2 seeds, ~5 min
    python scripts/figures/noisy_spheres.py --fast   # N = 500, 2 seeds
"""

import argparse
import json
import time
from pathlib import Path

import diffrax as dfx
import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import matplotlib


matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

import hopkur
import hopkur.theory as theory


FIGURES = Path(__file__).resolve().parents[2] / "docs" / "figures"


def run_dimension(dim, n, ratios, sigma, seeds, t1, dt):
    """Time-averaged r (seeds x K) for dimension `dim`, and the seconds it took."""
    k_c = theory.noisy_sphere_critical_coupling(sigma, dim)
    strengths = np.repeat(ratios * k_c, seeds)
    models = eqx.filter_vmap(
        lambda k: hopkur.Kuramoto(hopkur.MeanFieldCoupling(strength=k))
    )(jnp.asarray(strengths))
    x0 = np.zeros((len(strengths), n, dim))
    x0[..., 0] = 1.0
    saves = 201
    ts = jnp.linspace(0.0, t1, saves)
    start = time.perf_counter()
    sol = hopkur.simulate_batch(
        models,
        jnp.asarray(x0),
        batch_model=True,
        t1=t1,
        dt0=dt,
        noise=sigma,
        key=jr.key(dim),
        saveat=dfx.SaveAt(ts=ts, fn=lambda t, y, args: hopkur.order_parameter(y)),
        max_steps=int(t1 / dt) + 10,
    )
    assert sol.ys is not None
    r_t = np.asarray(jax.block_until_ready(sol.ys))  # (K * seeds, saves)
    seconds = time.perf_counter() - start
    late = np.asarray(ts) >= t1 / 2
    r = r_t[:, late].mean(axis=1).reshape(len(ratios), seeds)
    return strengths.reshape(len(ratios), seeds)[:, 0], r, seconds


def main() -> None:
    assert __doc__ is not None
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fast", action="store_true", help="small, quick run")
    args = parser.parse_args()
    jax.config.update("jax_enable_x64", True)

    n, seeds, t1 = (500, 2, 40.0) if args.fast else (5000, 2, 30.0)
    sigma, dt = 1.0, 0.01
    ratios = np.array([0.5, 1.25, 1.5, 2.0, 3.0, 5.0])
    fig, axes = plt.subplots(1, 3, figsize=(13, 4.0), sharey=True)
    record = {"n": n, "sigma": sigma, "dt": dt, "t1": t1, "seeds": seeds, "dims": {}}
    total = 0.0
    print(f"N = {n}, sigma = {sigma}, dt = {dt}, t1 = {t1}, {seeds} seeds")
    for ax, dim in zip(axes, (2, 3, 4)):
        strengths, r, seconds = run_dimension(dim, n, ratios, sigma, seeds, t1, dt)
        total += seconds
        k_c = theory.noisy_sphere_critical_coupling(sigma, dim)
        predicted = theory.noisy_sphere_order_parameter(strengths, sigma, dim)
        mean, spread = r.mean(axis=1), r.std(axis=1, ddof=1)
        above = ratios > 1
        deviation = float(np.max(np.abs(mean[above] - predicted[above])))
        print(f"D = {dim} (S^{dim - 1}), K_c = {k_c:g}: {seconds:.1f} s")
        print("     K    r (sim)  +-      r (vMF)")
        for k, a, s, b in zip(strengths, mean, spread, predicted):
            print(f"{k:6.2f}   {a:7.4f}  {s:6.4f}   {b:7.4f}")
        print(f"  max |r_sim - r_vMF| above K_c: {deviation:.4f}")
        record["dims"][str(dim)] = {
            "critical_coupling": k_c,
            "strength": strengths.tolist(),
            "r_sim": mean.tolist(),
            "r_sim_seed_std": spread.tolist(),
            "r_theory": predicted.tolist(),
            "max_abs_deviation_above_kc": deviation,
            "seconds": seconds,
        }
        grid = np.linspace(0.01, strengths.max() * 1.03, 300)
        ax.plot(
            grid,
            theory.noisy_sphere_order_parameter(grid, sigma, dim),
            "k-",
            lw=1.5,
            label=r"vMF: $r = A_D(2Kr/\sigma^2)$",
        )
        ax.errorbar(
            strengths,
            mean,
            yerr=spread,
            fmt="o",
            color="tab:red",
            ms=5,
            capsize=2,
            label=f"hopkur, N = {n}, {seeds} seeds",
        )
        ax.axvline(k_c, color="0.7", ls="--", lw=1)
        ax.set(
            xlabel="coupling strength K",
            title=f"$S^{dim - 1}$ (D = {dim}), $K_c = D\\sigma^2/2 = {k_c:g}$",
            ylim=(-0.02, 1.0),
        )
        ax.legend(loc="lower right", fontsize=8)
    axes[0].set_ylabel("time-averaged r")
    record["seconds"] = total
    FIGURES.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(FIGURES / "noisy_spheres.png", dpi=120)
    (FIGURES / "noisy_spheres.json").write_text(json.dumps(record, indent=1) + "\n")
    print(f"total {total:.1f} s; wrote {FIGURES / 'noisy_spheres.png'} and .json")


if __name__ == "__main__":
    main()
