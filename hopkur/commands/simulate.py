"""`hopkur simulate`: integrate a batch of trajectories of one model and report.

Writes to the output folder: `metrics.json` (final energies, order parameter, Lyapunov
verdict, solver statistics, wall time), `timeseries.npz` (save times, energies and order
parameter of every trajectory), PNG figures (`energy.png`, `order_parameter.png`, and
`oscillators.png` for D = 2 or 3), and `COMPLETE` last. See docs/cli/simulate.md.
"""

import argparse
import io
import sys
import time

from ._common import (
    add_common_flags,
    apply_config,
    atomic_write_bytes,
    HelpFormatter,
    OutputDir,
    setup_jax,
    UsageError,
)


MODELS = ("kuramoto", "hopfield", "coupled")
COUPLINGS = ("mean-field", "dense", "small-world")
LAGRANGIANS = ("tanh", "sigmoid", "identity", "relu", "softmax")
SOLVERS = ("tsit5", "dopri5", "dopri8", "bosh3", "heun", "euler")
FIXED_ONLY = ("heun", "euler")


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "simulate",
        help="integrate a batch of trajectories of one model and report energies, "
        "synchrony and the Lyapunov verdict",
        description=(
            "Integrate a batch of trajectories of a Kuramoto, Hopfield or coupled "
            "Hopfield-Kuramoto model from random initial states, with a progress bar, "
            "and write metrics.json (final energies, order parameter R, Lyapunov "
            "verdict, wall time), timeseries.npz and PNG figures to --out. Oscillators "
            "are kept on their spheres (retraction after every step)."
        ),
        formatter_class=HelpFormatter,
    )
    model = parser.add_argument_group("model")
    model.add_argument(
        "--model",
        choices=MODELS,
        default="kuramoto",
        help="kuramoto: oscillators on spheres; hopfield: continuous threshold units; "
        "coupled: Hopfield units whose weights are corrected by oscillators",
    )
    model.add_argument("--n", type=int, default=64, help="number of units/oscillators")
    model.add_argument(
        "--dim", type=int, default=2, help="oscillator dimension D (>= 2)"
    )
    model.add_argument(
        "--coupling",
        choices=COUPLINGS,
        default="mean-field",
        help="oscillator coupling: all-to-all K/N (O(N D)), a dense random symmetric "
        "matrix, or a small-world graph",
    )
    model.add_argument(
        "--strength",
        type=float,
        default=1.0,
        help="oscillator coupling strength K (positive synchronises)",
    )
    model.add_argument(
        "--neighbours",
        type=int,
        default=6,
        help="small-world coupling: lattice neighbours per oscillator (even)",
    )
    model.add_argument(
        "--rewire",
        type=float,
        default=0.1,
        help="small-world coupling: rewiring probability",
    )
    model.add_argument(
        "--frequency-spread",
        type=float,
        default=0.0,
        help="standard deviation of per-oscillator natural frequencies (random "
        "antisymmetric Omega_i); > 0 makes the model a non-gradient system",
    )
    model.add_argument(
        "--field",
        type=float,
        default=0.0,
        help="strength of a random external field c on the oscillators",
    )
    model.add_argument(
        "--lagrangian",
        choices=LAGRANGIANS,
        default="tanh",
        help="Hopfield Lagrangian (activation)",
    )
    model.add_argument(
        "--weight-scale",
        type=float,
        default=1.0,
        help="Hopfield weights: scale of a random symmetric matrix / sqrt(N), or the "
        "gain of Hebbian weights with --patterns",
    )
    model.add_argument(
        "--patterns",
        type=int,
        default=0,
        help="Hopfield weights from Hebb's rule on this many random +-1 patterns "
        "(0: random weights); initial states are then corrupted patterns",
    )
    model.add_argument(
        "--alpha",
        type=float,
        default=0.5,
        help="coupled model: strength of the all-to-all additive coupling",
    )
    run = parser.add_argument_group("run")
    run.add_argument("--batch", type=int, default=8, help="number of trajectories")
    run.add_argument("--t1", type=float, default=20.0, help="final time")
    run.add_argument(
        "--saves", type=int, default=101, help="number of saved times in [0, t1]"
    )
    run.add_argument("--solver", choices=SOLVERS, default="tsit5", help="ODE solver")
    run.add_argument(
        "--dt",
        type=float,
        default=None,
        help="fixed step size (required for heun and euler; otherwise adaptive steps)",
    )
    run.add_argument("--rtol", type=float, default=1e-5, help="adaptive: rtol")
    run.add_argument("--atol", type=float, default=1e-7, help="adaptive: atol")
    run.add_argument(
        "--max-steps", type=int, default=100_000, help="step budget per trajectory"
    )
    run.add_argument(
        "--no-retract",
        action="store_true",
        help="do not retract oscillators onto their spheres after each step",
    )
    run.add_argument(
        "--devices",
        type=int,
        default=1,
        help="shard the batch over this many devices (jax.sharding)",
    )
    run.add_argument("--no-figures", action="store_true", help="write no PNG figures")
    add_common_flags(parser, default_out="outputs/simulate")
    parser.set_defaults(run=run_command, _parser=parser)
    return parser


# ------------------------------------------------------------------ validation


def _validate(args: argparse.Namespace) -> None:
    def need(ok: bool, message: str) -> None:
        if not ok:
            raise UsageError(message)

    need(args.n >= 2, f"--n must be at least 2; got {args.n}")
    need(args.dim >= 2, f"--dim must be at least 2; got {args.dim}")
    need(args.batch >= 1, f"--batch must be at least 1; got {args.batch}")
    need(args.t1 > 0, f"--t1 must be positive; got {args.t1}")
    need(args.saves >= 2, f"--saves must be at least 2; got {args.saves}")
    need(args.rtol > 0 and args.atol > 0, "--rtol and --atol must be positive")
    need(args.max_steps >= 1, f"--max-steps must be positive; got {args.max_steps}")
    need(args.devices >= 1, f"--devices must be at least 1; got {args.devices}")
    need(args.patterns >= 0, f"--patterns must be >= 0; got {args.patterns}")
    need(
        args.frequency_spread >= 0,
        f"--frequency-spread must be >= 0; got {args.frequency_spread}",
    )
    need(0.0 <= args.rewire <= 1.0, f"--rewire must be in [0, 1]; got {args.rewire}")
    if args.dt is not None:
        need(args.dt > 0, f"--dt must be positive; got {args.dt}")
        steps = args.t1 / args.dt
        need(
            steps <= args.max_steps,
            f"--t1/--dt = {steps:.0f} steps exceeds --max-steps {args.max_steps}",
        )
    need(
        args.solver not in FIXED_ONLY or args.dt is not None,
        f"--solver {args.solver} has no error estimate: give a fixed step with --dt",
    )
    if args.model != "hopfield" and args.coupling == "small-world":
        k = args.neighbours
        need(
            k >= 2 and k % 2 == 0 and k < args.n,
            f"--neighbours must be even, >= 2 and < --n; got {k}",
        )


# ------------------------------------------------------------------ building


def _build(args, key):
    import jax.numpy as jnp
    import jax.random as jr
    import numpy as np

    import hopkur

    mkey, ykey = jr.split(key)
    data = np.asarray(jr.key_data(mkey)).ravel()
    rng = np.random.default_rng([int(v) for v in data])
    dtype = jnp.result_type(float)
    n, d, batch = args.n, args.dim, args.batch

    def arr(a):
        return jnp.asarray(a, dtype)

    def sphere(shape):
        x = rng.standard_normal((*shape, d))
        return arr(x / np.linalg.norm(x, axis=-1, keepdims=True))

    def kuramoto():
        if args.coupling == "mean-field":
            coupling = hopkur.MeanFieldCoupling(arr(args.strength))
        elif args.coupling == "dense":
            g = rng.standard_normal((n, n))
            coupling = hopkur.DenseCoupling(arr(args.strength * (g + g.T) / (2 * n)))
        else:
            edges = hopkur.small_world_edges(mkey, n, args.neighbours, args.rewire)
            k = args.strength / args.neighbours
            interaction = hopkur.LinearInteraction(arr(np.full(len(edges), k)))
            coupling = hopkur.EdgeCoupling(jnp.asarray(edges), interaction, n=n)
        field = omega = None
        if args.field:
            field = args.field * sphere((n,))
        if args.frequency_spread:
            g = rng.standard_normal((n, d, d)) * args.frequency_spread
            omega = arr((g - np.swapaxes(g, 1, 2)) / np.sqrt(2))
        return hopkur.Kuramoto(coupling, field=field, omega=omega)

    def hopfield():
        lagrangian = {
            "tanh": hopkur.lagrangian_tanh,
            "sigmoid": hopkur.lagrangian_sigmoid,
            "identity": hopkur.lagrangian_identity,
            "relu": hopkur.lagrangian_relu,
            "softmax": hopkur.lagrangian_softmax,
        }[args.lagrangian]
        patterns = None
        if args.patterns:
            patterns = rng.choice(np.array([-1.0, 1.0]), size=(args.patterns, n))
            w = args.weight_scale * np.asarray(hopkur.hebbian_weights(arr(patterns)))
        else:
            g = rng.standard_normal((n, n))
            w = args.weight_scale * (g + g.T) / np.sqrt(2 * n)
        return hopkur.Hopfield(arr(w), arr(np.zeros(n)), lagrangian), patterns

    def hopfield_states(patterns):
        if patterns is None:
            return arr(rng.standard_normal((batch, n)))
        cues = patterns[rng.integers(len(patterns), size=batch)]
        return hopkur.corrupt_patterns(arr(cues), 0.1, key=ykey)

    if args.model == "kuramoto":
        return kuramoto(), sphere((batch, n)), None
    if args.model == "hopfield":
        model, patterns = hopfield()
        return model, hopfield_states(patterns), patterns
    h, patterns = hopfield()
    coupling = hopkur.AdditiveCoupling(arr(args.alpha))
    model = hopkur.HopfieldKuramoto(h, kuramoto(), coupling)
    return model, (hopfield_states(patterns), sphere((batch, n))), patterns


def _solver(args):
    import diffrax as dfx

    solver = {
        "tsit5": dfx.Tsit5,
        "dopri5": dfx.Dopri5,
        "dopri8": dfx.Dopri8,
        "bosh3": dfx.Bosh3,
        "heun": dfx.Heun,
        "euler": dfx.Euler,
    }[args.solver]()
    if args.dt is not None:
        return solver, dfx.ConstantStepSize(), args.dt
    return solver, dfx.PIDController(rtol=args.rtol, atol=args.atol), None


# ------------------------------------------------------------------ figures


def _figures(out, args, ts, energies, orders, final_x, initial_x):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, ax = plt.subplots(figsize=(6, 4))
    for row in energies:
        ax.plot(ts, row, color="tab:blue", alpha=0.35, lw=1)
    ax.plot(ts, np.nanmean(energies, axis=0), color="black", lw=2, label="mean")
    ax.set(xlabel="t", ylabel="energy E", title=f"{args.model}: energy along the flow")
    ax.legend()
    out.save_figure("energy.png", fig)

    if orders is not None:
        fig, ax = plt.subplots(figsize=(6, 4))
        for row in orders:
            ax.plot(ts, row, color="tab:orange", alpha=0.35, lw=1)
        ax.plot(ts, np.nanmean(orders, axis=0), color="black", lw=2, label="mean")
        ax.set(xlabel="t", ylabel="R", ylim=(0, 1.02), title="order parameter R")
        ax.legend()
        out.save_figure("order_parameter.png", fig)

    if final_x is not None and final_x.shape[-1] == 2:
        fig, ax = plt.subplots(figsize=(5, 5))
        theta = np.linspace(0, 2 * np.pi, 200)
        ax.plot(np.cos(theta), np.sin(theta), color="0.7", lw=1)
        ax.scatter(*initial_x.T, s=12, color="0.6", label="t = 0")
        ax.scatter(*final_x.T, s=16, color="tab:red", label=f"t = {args.t1:g}")
        ax.set(aspect="equal", title="oscillators (trajectory 0)")
        ax.legend(loc="upper right")
        out.save_figure("oscillators.png", fig)
    elif final_x is not None and final_x.shape[-1] == 3:
        fig = plt.figure(figsize=(5, 5))
        ax = fig.add_subplot(projection="3d")
        u, v = np.mgrid[0 : 2 * np.pi : 30j, 0 : np.pi : 15j]
        ax.plot_wireframe(
            np.cos(u) * np.sin(v),
            np.sin(u) * np.sin(v),
            np.cos(v),
            color="0.85",
            lw=0.5,
        )
        ax.scatter(*initial_x.T, s=8, color="0.6", label="t = 0")
        ax.scatter(*final_x.T, s=14, color="tab:red", label=f"t = {args.t1:g}")
        ax.set(title="oscillators on the sphere (trajectory 0)")
        ax.legend(loc="upper right")
        out.save_figure("oscillators.png", fig)


# ------------------------------------------------------------------ run


def _config(args) -> dict:
    skip = {"run", "_parser", "command", "config", "overwrite", "quiet"}
    return {k: v for k, v in sorted(vars(args).items()) if k not in skip}


def run_command(args: argparse.Namespace) -> int:
    args = apply_config(args._parser, args)
    _validate(args)
    setup_jax(args)

    import diffrax as dfx
    import jax
    import jax.numpy as jnp
    import jax.random as jr
    import numpy as np

    import hopkur

    if args.devices > len(jax.devices()):
        raise UsageError(
            f"--devices {args.devices} but only {len(jax.devices())} device(s) are "
            "available (on CPU set XLA_FLAGS=--xla_force_host_platform_device_count=N "
            "before starting)"
        )
    start = time.perf_counter()
    try:
        model, y0s, patterns = _build(args, jr.key(args.seed))
    except ValueError as e:
        raise UsageError(str(e).splitlines()[0]) from None
    solver, controller, dt0 = _solver(args)
    ts = jnp.linspace(0.0, args.t1, args.saves)

    out = OutputDir(args.out, overwrite=args.overwrite)
    try:
        meter = dfx.NoProgressMeter() if args.quiet else dfx.TqdmProgressMeter()
        solve_start = time.perf_counter()
        sol = hopkur.simulate_batch(
            model,
            y0s,
            devices=None if args.devices == 1 else args.devices,
            t1=args.t1,
            dt0=dt0,
            solver=solver,
            stepsize_controller=controller,
            saveat=dfx.SaveAt(ts=ts),
            max_steps=args.max_steps,
            throw=False,
            progress_meter=meter,
            retract=not args.no_retract,
        )
        jax.block_until_ready(sol.ys)
        solve_time = time.perf_counter() - solve_start
        report = hopkur.lyapunov_report(model, sol)
        energies = np.asarray(report.energies)
        ys = sol.ys
        assert ys is not None
        x = ys[1] if args.model == "coupled" else ys
        oscillators = args.model != "hopfield"
        orders = np.asarray(hopkur.order_parameter(x)) if oscillators else None
        ok = np.asarray(
            (sol.result == dfx.RESULTS.successful)
            | (sol.result == dfx.RESULTS.event_occurred)
        )

        def finite_last(a):
            return [
                float(row[np.isfinite(row)][-1]) if np.isfinite(row).any() else None
                for row in a
            ]

        metrics = {
            "command": "simulate",
            "hopkur_version": hopkur.__version__,
            "config": _config(args),
            "model": {
                "kind": args.model,
                "class": type(model).__name__,
                "n": args.n,
                "dim": None if args.model == "hopfield" else args.dim,
                "is_gradient_system": report.is_gradient_system,
            },
            "batch": args.batch,
            "initial_energy": [float(v) for v in energies[:, 0]],
            "final_energy": finite_last(energies),
            "final_energy_mean": _mean(finite_last(energies)),
            "order_parameter_final": None if orders is None else finite_last(orders),
            "order_parameter_final_mean": None
            if orders is None
            else _mean(finite_last(orders)),
            "lyapunov": {
                "verdict": report.verdict,
                "decreasing": report.decreasing,
                "is_gradient_system": report.is_gradient_system,
                "max_increase": report.max_increase,
                "max_increase_time": report.max_increase_time,
                "tolerance": report.tolerance,
                "finite": report.finite,
            },
            "solve_succeeded": bool(ok.all()),
            "failed_trajectories": [int(i) for i in np.flatnonzero(~ok)],
            "num_steps": [int(v) for v in np.asarray(sol.stats["num_steps"])],
            "wall_time_s": None,
            "solve_time_s": solve_time,
            "jax": {
                "version": jax.__version__,
                "backend": jax.default_backend(),
                "devices": args.devices,
                "x64": bool(jax.config.read("jax_enable_x64")),
                "dtype": str(energies.dtype),
            },
        }
        if oscillators:
            norms = np.linalg.norm(np.asarray(x), axis=-1)
            drift = np.abs(norms - 1)[np.isfinite(norms)]
            metrics["max_norm_drift"] = float(drift.max()) if drift.size else None
        if patterns is not None:
            h = np.asarray(ys[0] if args.model == "coupled" else ys)[:, -1]
            m = np.abs(np.asarray(hopkur.pattern_overlaps(np.sign(h), patterns)))
            metrics["best_pattern_overlap"] = [float(v) for v in m.max(axis=-1)]

        buffer = io.BytesIO()
        np.savez(
            buffer,
            ts=np.asarray(ts),
            energies=energies,
            order_parameter=np.zeros((0,)) if orders is None else orders,
        )
        atomic_write_bytes(out.file("timeseries.npz"), buffer.getvalue())
        if not args.no_figures:
            final_x = initial_x = None
            if oscillators:
                final_x = np.asarray(x[0, -1])
                initial_x = np.asarray(x[0, 0])
            _figures(out, args, np.asarray(ts), energies, orders, final_x, initial_x)
        metrics["wall_time_s"] = time.perf_counter() - start
        out.write_json("metrics.json", metrics)
        out.complete()
    except BaseException:
        out.abandon()
        raise
    if not args.quiet:
        r = metrics["order_parameter_final_mean"]
        print(
            f"hopkur simulate: {args.batch} x {args.model} (N = {args.n}) to t = "
            f"{args.t1:g} in {solve_time:.2f} s; Lyapunov: {report.verdict}"
            + ("" if r is None else f"; mean final R = {r:.3f}")
            + f"\nresults in {out.path}",
            file=sys.stderr,
        )
    return 0


def _mean(values) -> float | None:
    good = [v for v in values if v is not None]
    return sum(good) / len(good) if good else None
