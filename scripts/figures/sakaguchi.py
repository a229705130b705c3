"""The Sakaguchi-Kuramoto transition at three phase lags against Ott-Antonsen.

D = 2, all-to-all coupling K/N with a phase lag alpha
(`hopkur.MeanFieldCoupling(K, phase_lag=alpha)`, i.e.
dtheta_i/dt = omega_i + K/N sum_j sin(theta_j - theta_i - alpha)), N Lorentzian natural
frequencies of half width gamma (deterministic quantiles). Against the Ott-Antonsen
prediction r^2 = 1 - 2 gamma / (K cos alpha) and the collective frequency
Omega = -(K/2) sin(alpha) (1 + r^2) (`hopkur.theory.sakaguchi_order_parameter`). All
(K, alpha) run as one batch of models; r and the phase psi of the mean field are
measured over the second half of the run (Omega from the unwrapped psi). Fixed-step
Heun with retraction, as in kuramoto_transition.py. Writes docs/figures/sakaguchi.png
and sakaguchi.json.

    python scripts/figures/sakaguchi.py          # N = 10000, ~3 min
    python scripts/figures/sakaguchi.py --fast   # N = 2000
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

    n, t1 = (2000, 60.0) if args.fast else (10_000, 150.0)
    gamma, dt = 0.5, 0.05
    lags = np.array([0.0, 0.5, 1.0])
    ratios = np.array([0.6, 1.2, 1.5, 2.0, 3.0, 4.5])  # K cos(alpha) / (2 gamma)
    k = (ratios[None, :] * 2 * gamma / np.cos(lags)[:, None]).ravel()
    a = np.repeat(lags, len(ratios))
    omega = hopkur.planar_rotations(
        jnp.asarray(hopkur.lorentzian_frequencies(n, gamma))
    )
    theta = np.random.default_rng(0).uniform(0, 2 * np.pi, n)
    x0 = np.stack([np.cos(theta), np.sin(theta)], axis=-1)
    x0s = jnp.asarray(np.broadcast_to(x0, (len(k), n, 2)))
    models = eqx.filter_vmap(
        lambda s, lag: hopkur.Kuramoto(
            hopkur.MeanFieldCoupling(strength=s, phase_lag=lag), omega=omega
        )
    )(jnp.asarray(k), jnp.asarray(a))
    ts = jnp.linspace(0.0, t1, 601)

    start = time.perf_counter()
    sol = hopkur.simulate_batch(
        models,
        x0s,
        batch_model=True,
        t1=t1,
        dt0=dt,
        solver=dfx.Heun(),
        stepsize_controller=dfx.ConstantStepSize(),
        saveat=dfx.SaveAt(ts=ts, fn=lambda t, y, args: jnp.mean(y, axis=-2)),
        max_steps=int(t1 / dt) + 10,
    )
    assert sol.ys is not None
    z = np.asarray(jax.block_until_ready(sol.ys))  # (models, saves, 2): the mean field
    seconds = time.perf_counter() - start
    late = np.asarray(ts) >= t1 / 2
    r_t = np.linalg.norm(z, axis=-1)
    r = r_t[:, late].mean(axis=1)
    spread = r_t[:, late].std(axis=1)
    psi = np.unwrap(np.arctan2(z[..., 1], z[..., 0])[:, late], axis=1)
    t_late = np.asarray(ts)[late]
    big_omega = (psi[:, -1] - psi[:, 0]) / (t_late[-1] - t_late[0])
    r_th, omega_th = theory.sakaguchi_order_parameter(k, a, gamma)

    print(f"N = {n}, gamma = {gamma}, t1 = {t1}, dt = {dt}: {seconds:.1f} s")
    print(" alpha     K    r (sim)  r (OA)   Omega (sim)  Omega (OA)")
    for row in zip(a, k, r, r_th, big_omega, omega_th):
        print("{:5.2f}  {:5.2f}   {:7.4f}  {:7.4f}   {:9.4f}  {:9.4f}".format(*row))
    locked = r_th > 0
    deviation = float(np.max(np.abs(r - r_th)[locked]))
    omega_deviation = float(np.max(np.abs(big_omega - omega_th)[locked]))
    print(f"max |r - r_OA| (K cos alpha > 2 gamma): {deviation:.4f}")
    print(f"max |Omega - Omega_OA|: {omega_deviation:.4f}")

    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 4.2))
    colors = ("tab:blue", "tab:orange", "tab:green")
    for lag, color in zip(lags, colors):
        grid = np.linspace(0.01, k[a == lag].max() * 1.03, 400)
        rg, og = theory.sakaguchi_order_parameter(grid, lag, gamma)
        ax.plot(grid, rg, "-", color=color, lw=1.5)
        bx.plot(grid, og, "-", color=color, lw=1.5)
        sel = a == lag
        ax.errorbar(
            k[sel],
            r[sel],
            yerr=spread[sel],
            fmt="o",
            color=color,
            ms=5,
            capsize=2,
            label=f"$\\alpha$ = {lag:g}",
        )
        sync = sel & locked
        bx.plot(k[sync], big_omega[sync], "o", color=color, ms=5)
    ax.plot([], [], "k-", label="Ott–Antonsen")
    ax.axhline(np.sqrt(np.pi / (4 * n)), color="0.6", ls=":", lw=1)
    ax.set(
        xlabel="coupling strength K",
        ylabel="time-averaged r",
        title=f"Sakaguchi–Kuramoto, N = {n}, $\\gamma$ = {gamma}",
        ylim=(-0.02, 1.0),
    )
    ax.legend(loc="lower right", fontsize=8)
    bx.set(
        xlabel="coupling strength K",
        ylabel=r"collective frequency $\Omega = \dot\psi$",
        title=r"$\Omega = -\frac{K}{2}\sin\alpha\,(1 + r^2)$",
    )
    FIGURES.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(FIGURES / "sakaguchi.png", dpi=120)
    record = {
        "n": n,
        "gamma": gamma,
        "t1": t1,
        "dt": dt,
        "phase_lag": a.tolist(),
        "strength": k.tolist(),
        "r_sim": r.tolist(),
        "r_sim_time_std": spread.tolist(),
        "r_theory": r_th.tolist(),
        "omega_sim": big_omega.tolist(),
        "omega_theory": [None if np.isnan(v) else float(v) for v in omega_th],
        "max_abs_deviation_r_locked": deviation,
        "max_abs_deviation_omega_locked": omega_deviation,
        "seconds": seconds,
    }
    (FIGURES / "sakaguchi.json").write_text(json.dumps(record, indent=1) + "\n")
    print(f"wrote {FIGURES / 'sakaguchi.png'} and .json")


if __name__ == "__main__":
    main()
