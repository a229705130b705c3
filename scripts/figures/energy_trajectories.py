"""Energy along trajectories, for each model family, with the Lyapunov verdict.

Batches of trajectories (`hopkur.simulate_batch`) of: a continuous Hopfield network
(tanh), a Kuramoto network on a small-world graph with a nonlinear interaction and a
field (D = 3), the coupled Hopfield-Kuramoto memory, and a Kuramoto network with
per-oscillator natural frequencies (not a gradient system); plus AKOrN's discrete
update (`hopkur.akorn_steps`) with a small and a large step. Each panel's title is the
verdict of `hopkur.lyapunov_report`.

    python scripts/figures/energy_trajectories.py          # N = 64, 16 trajectories
    python scripts/figures/energy_trajectories.py --fast   # N = 16, 4 trajectories
"""

import argparse
import time
from pathlib import Path

import diffrax as dfx
import jax
import jax.numpy as jnp
import jax.random as jr
import matplotlib


matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

import hopkur


FIGURES = Path(__file__).resolve().parents[2] / "docs" / "figures"


def _unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def main() -> None:
    assert __doc__ is not None
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fast", action="store_true", help="small, quick run")
    args = parser.parse_args()
    jax.config.update("jax_enable_x64", True)

    n, batch, d = (16, 4, 3) if args.fast else (64, 16, 3)
    t1 = 10.0
    rng = np.random.default_rng(0)
    ts = jnp.linspace(0.0, t1, 101)
    saveat = dfx.SaveAt(ts=ts)

    g = rng.standard_normal((n, n))
    hopfield = hopkur.Hopfield(
        jnp.asarray(2 * (g + g.T) / np.sqrt(2 * n)),
        jnp.zeros(n),
        hopkur.lagrangian_tanh,
    )
    edges = hopkur.small_world_edges(jr.key(0), n, 6, 0.1)
    interaction = hopkur.TanhInteraction(
        jnp.asarray(rng.uniform(0.2, 1.0, len(edges))),
        jnp.asarray(rng.uniform(0.5, 2.0, len(edges))),
    )
    field = jnp.asarray(0.3 * rng.standard_normal((n, d)))
    kuramoto = hopkur.Kuramoto(
        hopkur.EdgeCoupling(jnp.asarray(edges), interaction, n=n), field=field
    )
    coupled = hopkur.HopfieldKuramoto(
        hopfield, kuramoto, hopkur.AdditiveCoupling(jnp.asarray(0.5))
    )
    omega = rng.standard_normal((n, d, d))
    rotating = hopkur.Kuramoto(
        hopkur.DenseCoupling(jnp.asarray(g / n)), field=field, omega=jnp.asarray(omega)
    )
    hs = jnp.asarray(2 * rng.standard_normal((batch, n)))
    xs = jnp.asarray(_unit(rng.standard_normal((batch, n, d))))

    cases = [
        ("Hopfield, tanh", hopfield, hs),
        ("Kuramoto, small world, tanh interaction, D = 3", kuramoto, xs),
        ("Hopfield-Kuramoto, additive coupling", coupled, (hs, xs)),
        ("Kuramoto, per-oscillator frequencies", rotating, xs),
    ]
    short = [
        "Hopfield",
        "Kuramoto\nsmall world",
        "Hopfield-\nKuramoto",
        "Kuramoto\n$\\Omega_i$",
    ]
    fig, axes = plt.subplots(2, 3, figsize=(14, 7.5))
    axes = axes.ravel()
    solutions = []
    for ax, (title, model, y0s) in zip(axes, cases):
        start = time.perf_counter()
        sol = hopkur.simulate_batch(model, y0s, t1=t1, saveat=saveat, max_steps=100_000)
        solutions.append(sol)
        report = hopkur.lyapunov_report(model, sol)
        print(f"{title}: {report.verdict} ({time.perf_counter() - start:.1f} s)")
        for row in report.energies:
            ax.plot(np.asarray(ts), row, lw=1, alpha=0.6)
        ax.set(xlabel="t", ylabel="energy")
        ax.set_title(f"{title}\n{report.verdict}", fontsize=9)

    # AKOrN's discrete update on the small-world network: small and large steps.
    akorn_ax = axes[4]
    for gamma, color in ((0.05, "tab:green"), (1.0, "tab:purple")):
        verdicts = []
        for b in range(batch):
            out = hopkur.akorn_steps(kuramoto, xs[b], steps=100, gamma=gamma)
            report = hopkur.lyapunov_report(kuramoto, out)
            verdicts.append(report.verdict)
            akorn_ax.plot(
                np.asarray(out.energies),
                color=color,
                lw=1,
                alpha=0.6,
                label=f"$\\gamma$ = {gamma}: "
                + ("decreasing" if report.decreasing else "not monotone")
                if b == 0
                else None,
            )
        print(f"AKOrN steps, gamma = {gamma}: {verdicts[-1]}")
    akorn_ax.set(xlabel="step", ylabel="energy")
    akorn_ax.set_title("AKOrN discrete steps (small-world network)", fontsize=9)
    akorn_ax.legend(fontsize=7)

    # The rate of change of energy at the final states, as a check of the verdicts.
    rate_ax = axes[5]
    for name, (_, model, _), sol in zip(short, cases, solutions):
        assert sol.ys is not None
        mid = jax.tree.map(lambda a: a[:, 50], sol.ys)
        rates = jax.vmap(lambda y: model.energy_rate(0.0, y, None))(mid)
        rate_ax.scatter([name] * batch, np.asarray(rates), s=12)
    rate_ax.axhline(0.0, color="0.5", lw=0.8)
    rate_ax.set_title("dE/dt at t = 5 (<= 0 for gradient systems)", fontsize=9)
    rate_ax.tick_params(axis="x", labelsize=7)
    FIGURES.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(FIGURES / "energy_trajectories.png", dpi=110)
    print(f"wrote {FIGURES / 'energy_trajectories.png'}")


if __name__ == "__main__":
    main()
