"""`hopkur simulate`: integrate a batch of trajectories of one model and report.

Writes to the output folder: `metrics.json` (final energies, order parameter, Lyapunov
verdict, solver statistics, wall time), `timeseries.npz` (save times, energies and order
parameter of every trajectory), PNG figures (`energy.png`, `order_parameter.png`, and
`oscillators.png` for D = 2 or 3), and `COMPLETE` last. See docs/cli/simulate.md.

This module is long because it is one command with three models: its settings (every
flag with its help text and check, one dataclass), the builder of each model from
them, the figures and the run; the shared parts already live in `_common.py`,
`_settings.py` and `_folder.py`.
"""

import argparse
import dataclasses
import io
import sys
import time

from . import _processes
from ._common import (
    add_common_flags,
    add_flags,
    HelpFormatter,
    resolve,
    RunFolder,
    seed_setting,
    setting,
    setup_jax,
    to_dict,
    UsageError,
    x64_setting,
)


MODELS = ("kuramoto", "hopfield", "coupled")
COUPLINGS = ("mean-field", "dense", "small-world")
LAGRANGIANS = ("tanh", "sigmoid", "identity", "relu", "softmax")
FREQUENCIES = ("none", "lorentzian", "gaussian", "uniform", "bimodal")
SOLVERS = ("tsit5", "dopri5", "dopri8", "bosh3", "heun", "euler")
FIXED_ONLY = ("heun", "euler")
# Saved values per run (batch x saves x units x D) above which a run is refused: the
# time series would not fit in memory.
MAX_SAVED_VALUES = 2_000_000_000


@dataclasses.dataclass(frozen=True)
class SimulateSettings:
    """The settings of `hopkur simulate`."""

    model: str = setting(
        "kuramoto",
        "kuramoto: oscillators on spheres; hopfield: continuous threshold units; "
        "coupled: Hopfield units whose weights are corrected by oscillators",
        choices=MODELS,
        group="model",
    )
    n: int = setting(
        64, "number of units/oscillators", minimum=2, maximum=100_000_000, group="model"
    )
    dim: int = setting(
        2, "oscillator dimension D (>= 2)", minimum=2, maximum=1024, group="model"
    )
    coupling: str = setting(
        "mean-field",
        "oscillator coupling: all-to-all K/N (O(N D)), a dense random symmetric "
        "matrix, or a small-world graph",
        choices=COUPLINGS,
        group="model",
    )
    strength: float = setting(
        1.0,
        "oscillator coupling strength K (positive synchronises)",
        minimum=-1e6,
        maximum=1e6,
        group="model",
    )
    neighbours: int = setting(
        6,
        "small-world coupling: lattice neighbours per oscillator (even)",
        minimum=2,
        group="model",
    )
    rewire: float = setting(
        0.1,
        "small-world coupling: rewiring probability",
        minimum=0,
        maximum=1,
        group="model",
    )
    frequency_spread: float = setting(
        0.0,
        "standard deviation of per-oscillator natural frequencies (random "
        "antisymmetric Omega_i); > 0 makes the model a non-gradient system",
        minimum=0,
        maximum=1e6,
        group="model",
    )
    field: float = setting(
        0.0,
        "strength of a random external field c on the oscillators",
        minimum=-1e6,
        maximum=1e6,
        group="model",
    )
    frequencies: str = setting(
        "none",
        "natural frequencies omega_i of the oscillators (rotations in the plane of "
        "the first two coordinates; at D = 2 the classical ones), deterministic "
        "quantiles of this density: lorentzian (half width --width), gaussian "
        "(standard deviation --width), uniform (on [-width, width]) or bimodal "
        "(Lorentzians of half width --width at +-separation)",
        choices=FREQUENCIES,
        group="model",
    )
    width: float = setting(
        1.0,
        "--frequencies: the width of the density (> 0)",
        above=0,
        maximum=1e6,
        group="model",
    )
    separation: float = setting(
        1.0,
        "--frequencies bimodal: the centre +-separation of each peak (>= 0)",
        minimum=0,
        maximum=1e6,
        group="model",
    )
    phase_lag: float = setting(
        0.0,
        "oscillator coupling: phase lag alpha (radians; at D = 2 the "
        "Sakaguchi-Kuramoto model, sin(theta_j - theta_i - alpha); for D > 2 a "
        "rotation of the neighbour's state in the plane of the first two coordinates)",
        minimum=-1e3,
        maximum=1e3,
        group="model",
    )
    noise: float = setting(
        0.0,
        "noise amplitude sigma >= 0: isotropic tangent noise on the oscillators, "
        "additive noise on threshold units (Stratonovich SDE, Heun with the fixed "
        "step --dt)",
        minimum=0,
        maximum=1e6,
        group="model",
    )
    lagrangian: str = setting(
        "tanh", "Hopfield Lagrangian (activation)", choices=LAGRANGIANS, group="model"
    )
    weight_scale: float = setting(
        1.0,
        "Hopfield weights: scale of a random symmetric matrix / sqrt(N), or the "
        "gain of Hebbian weights with --patterns",
        minimum=-1e6,
        maximum=1e6,
        group="model",
    )
    patterns: int = setting(
        0,
        "Hopfield weights from Hebb's rule on this many random +-1 patterns "
        "(0: random weights); initial states are then corrupted patterns",
        minimum=0,
        maximum=1_000_000,
        group="model",
    )
    alpha: float = setting(
        0.5,
        "coupled model: strength of the all-to-all additive coupling",
        minimum=-1e6,
        maximum=1e6,
        group="model",
    )
    batch: int = setting(
        8, "number of trajectories", minimum=1, maximum=10_000_000, group="run"
    )
    t1: float = setting(20.0, "final time", above=0, maximum=1e9, group="run")
    saves: int = setting(
        101,
        "number of saved times in [0, t1]",
        minimum=2,
        maximum=1_000_000,
        group="run",
    )
    solver: str = setting("tsit5", "ODE solver", choices=SOLVERS, group="run")
    dt: float | None = setting(
        None,
        "fixed step size (required for heun and euler; otherwise adaptive steps)",
        above=0,
        group="run",
    )
    rtol: float = setting(1e-5, "adaptive: rtol", above=0, maximum=1, group="run")
    atol: float = setting(1e-7, "adaptive: atol", above=0, maximum=1, group="run")
    max_steps: int = setting(
        100_000,
        "step budget per trajectory",
        minimum=1,
        maximum=1_000_000_000,
        group="run",
    )
    no_retract: bool = setting(
        False,
        "do not retract oscillators onto their spheres after each step",
        group="run",
    )
    devices: int = setting(
        1,
        "shard the batch over this many devices (jax.sharding); with --processes, "
        "the host devices of each process",
        minimum=1,
        maximum=1_000_000,
        group="run",
    )
    processes: int = setting(
        1,
        "run as this many local processes on JAX's distributed runtime (CPU "
        "collectives), the batch sharded over all their devices; process 0 writes "
        "--out (see docs/how-to/distributed.md)",
        minimum=1,
        maximum=1024,
        group="run",
    )
    no_figures: bool = setting(False, "write no PNG figures", group="run")
    seed: int = seed_setting()
    x64: bool = x64_setting()

    def check(self) -> None:
        if self.phase_lag and self.model == "hopfield":
            raise UsageError(
                "--phase-lag needs oscillators: --model hopfield has none (use "
                "kuramoto or coupled)"
            )
        if self.frequencies != "none" and self.model == "hopfield":
            raise UsageError(
                "--frequencies needs oscillators: --model hopfield has none (use "
                "kuramoto or coupled)"
            )
        if self.frequencies != "none" and self.frequency_spread:
            raise UsageError(
                "--frequencies and --frequency-spread both set natural frequencies; "
                "give one of them"
            )
        if self.noise:
            if self.dt is None:
                raise UsageError(
                    "--noise integrates an SDE with a fixed step: give it with --dt"
                )
            if self.solver not in ("tsit5", "heun"):
                raise UsageError(
                    "--noise integrates the Stratonovich SDE with Heun; "
                    f"--solver {self.solver} cannot (leave --solver out or give heun)"
                )
        if self.dt is not None:
            steps = self.t1 / self.dt
            if steps > self.max_steps:
                raise UsageError(
                    f"--t1/--dt = {steps:.0f} steps exceeds --max-steps "
                    f"{self.max_steps}"
                )
        if self.solver in FIXED_ONLY and self.dt is None:
            raise UsageError(
                f"--solver {self.solver} has no error estimate: give a fixed step "
                "with --dt"
            )
        if self.model != "hopfield" and self.coupling == "small-world":
            k = self.neighbours
            if not (k % 2 == 0 and k < self.n):
                raise UsageError(f"--neighbours must be even, >= 2 and < --n; got {k}")
        units = self.n * (1 if self.model == "hopfield" else self.dim + 1)
        if self.batch * self.saves * units > MAX_SAVED_VALUES:
            raise UsageError(
                f"--batch {self.batch} x --saves {self.saves} x {units} values per "
                "state would not fit in memory; lower --batch or --saves"
            )


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
    add_flags(parser, SimulateSettings)
    add_common_flags(parser, default_out="outputs/simulate")
    parser.set_defaults(run=run_command, _parser=parser)
    return parser


# ------------------------------------------------------------------ building


def _build(settings, key):
    args = settings
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
            coupling = hopkur.MeanFieldCoupling(strength=arr(args.strength))
        elif args.coupling == "dense":
            g = rng.standard_normal((n, n))
            coupling = hopkur.DenseCoupling(
                weights=arr(args.strength * (g + g.T) / (2 * n))
            )
        else:
            edges = hopkur.small_world_edges(mkey, n, args.neighbours, args.rewire)
            k = args.strength / args.neighbours
            interaction = hopkur.LinearInteraction(arr(np.full(len(edges), k)))
            coupling = hopkur.EdgeCoupling(jnp.asarray(edges), interaction, n=n)
        if args.phase_lag:
            coupling = hopkur.with_phase_lag(coupling, arr(args.phase_lag))
        field = omega = None
        if args.field:
            field = args.field * sphere((n,))
        if args.frequencies != "none":
            freqs = rng.permutation(_frequencies(args, n))
            generator = np.zeros((d, d))
            generator[1, 0], generator[0, 1] = 1.0, -1.0
            omega = arr(freqs[:, None, None] * generator)
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


def _frequencies(settings, n):
    """The natural frequencies of `--frequencies` (deterministic quantiles)."""
    import hopkur

    width = settings.width
    if settings.frequencies == "lorentzian":
        return hopkur.lorentzian_frequencies(n, width)
    if settings.frequencies == "gaussian":
        return hopkur.gaussian_frequencies(n, width)
    if settings.frequencies == "uniform":
        return hopkur.uniform_frequencies(n, width)
    return hopkur.bimodal_frequencies(n, width, settings.separation)


def _distribution(settings):
    import hopkur.theory as theory

    width = settings.width
    if settings.frequencies == "lorentzian":
        return theory.Lorentzian(width)
    if settings.frequencies == "gaussian":
        return theory.Gaussian(width)
    if settings.frequencies == "uniform":
        return theory.Uniform(width)
    return theory.Bimodal(width, settings.separation)


def _theory(settings) -> dict:
    """The mean-field prediction of the stationary R for these settings, if one
    applies: `{"name", "order_parameter", ...}`, or `{"name": None, "reason": ...}`."""
    import math

    import hopkur.theory as theory

    s = settings

    def none(reason):
        return {"name": None, "order_parameter": None, "reason": reason}

    if s.model != "kuramoto":
        return none(f"no mean-field theory for --model {s.model}")
    if s.coupling != "mean-field":
        return none(
            f"the mean-field theories need --coupling mean-field, not {s.coupling}"
        )
    if s.field:
        return none("no mean-field theory with an external --field")
    if s.frequency_spread:
        return none("no mean-field theory for random --frequency-spread matrices")
    k = s.strength
    if s.frequencies == "none":
        if not s.noise:
            return none(
                "identical oscillators without noise synchronise fully (R -> 1) for "
                "K > 0; no distribution to compare"
            )
        if s.phase_lag:
            return none("the von Mises-Fisher theory has no phase lag")
        r = float(theory.noisy_sphere_order_parameter(k, s.noise, s.dim))
        return {
            "name": "von Mises-Fisher (noisy identical oscillators on S^(D-1))",
            "function": "hopkur.theory.noisy_sphere_order_parameter",
            "order_parameter": r,
            "critical_coupling": theory.noisy_sphere_critical_coupling(s.noise, s.dim),
        }
    if s.noise:
        return none("no mean-field theory for natural frequencies together with noise")
    if s.dim != 2:
        return none("the frequency theories are for D = 2 (phase oscillators)")
    if s.frequencies == "lorentzian":
        if abs(s.phase_lag) >= 0.5 * math.pi:
            return none("Ott-Antonsen needs |--phase-lag| < pi/2")
        r, omega = theory.sakaguchi_order_parameter(k, s.phase_lag, s.width)
        return {
            "name": "Ott-Antonsen (Lorentzian frequencies, phase lag)",
            "function": "hopkur.theory.sakaguchi_order_parameter",
            "order_parameter": float(r),
            "collective_frequency": None if math.isnan(omega) else float(omega),
            "critical_coupling": 2 * s.width / math.cos(s.phase_lag),
        }
    if s.phase_lag:
        return none("with a phase lag only the Lorentzian has a theory (Ott-Antonsen)")
    distribution = _distribution(s)
    if s.frequencies == "bimodal" and 3 * s.separation**2 > s.width**2:
        return none(
            "the self-consistency theory is for unimodal densities; this bimodal one "
            "(separation > width / sqrt 3) has other attractors"
        )
    return {
        "name": "Kuramoto self-consistency",
        "function": "hopkur.theory.order_parameter",
        "order_parameter": float(theory.order_parameter(k, distribution)),
        "critical_coupling": theory.critical_coupling(distribution),
    }


def _solver(settings):
    args = settings
    import diffrax as dfx

    if settings.noise:
        return dfx.Heun(), dfx.ConstantStepSize(), args.dt

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


def _figures(out, settings, ts, energies, orders, final_x, initial_x, theory):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, ax = plt.subplots(figsize=(6, 4))
    for row in energies:
        ax.plot(ts, row, color="tab:blue", alpha=0.35, lw=1)
    ax.plot(ts, np.nanmean(energies, axis=0), color="black", lw=2, label="mean")
    ax.set(
        xlabel="t", ylabel="energy E", title=f"{settings.model}: energy along the flow"
    )
    ax.legend()
    out.save_figure("energy.png", fig)

    if orders is not None:
        fig, ax = plt.subplots(figsize=(6, 4))
        for row in orders:
            ax.plot(ts, row, color="tab:orange", alpha=0.35, lw=1)
        ax.plot(ts, np.nanmean(orders, axis=0), color="black", lw=2, label="mean")
        if theory["order_parameter"] is not None:
            ax.axhline(
                theory["order_parameter"],
                color="tab:green",
                ls="--",
                lw=1.5,
                label=f"theory: {theory['order_parameter']:.3f}",
            )
            ax.axvspan(ts[0], ts[-1] / 2, color="0.93", zorder=0)
        ax.set(xlabel="t", ylabel="R", ylim=(0, 1.02), title="order parameter R")
        ax.legend()
        out.save_figure("order_parameter.png", fig)

    if final_x is not None and final_x.shape[-1] == 2:
        fig, ax = plt.subplots(figsize=(5, 5))
        theta = np.linspace(0, 2 * np.pi, 200)
        ax.plot(np.cos(theta), np.sin(theta), color="0.7", lw=1)
        ax.scatter(*initial_x.T, s=12, color="0.6", label="t = 0")
        ax.scatter(*final_x.T, s=16, color="tab:red", label=f"t = {settings.t1:g}")
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
        ax.scatter(*final_x.T, s=14, color="tab:red", label=f"t = {settings.t1:g}")
        ax.set(title="oscillators on the sphere (trajectory 0)")
        ax.legend(loc="upper right")
        out.save_figure("oscillators.png", fig)


# ------------------------------------------------------------------ run


def run_command(args: argparse.Namespace) -> int:
    child = _processes.is_child()
    writer = not child or _processes.process_id() == 0
    out = RunFolder(args.out, "simulate", overwrite=args.overwrite) if writer else None
    settings = resolve(SimulateSettings, args)
    distributed = settings.processes > 1
    if distributed and not child:
        return _processes.launch(
            "simulate",
            settings,
            args,
            processes=settings.processes,
            devices=settings.devices,
        )
    if distributed:
        _processes.initialize(settings.processes, settings.devices)
    quiet = args.quiet
    setup_jax(settings)

    import diffrax as dfx
    import jax
    import jax.numpy as jnp
    import jax.random as jr
    import numpy as np

    import hopkur

    if not distributed and settings.devices > len(jax.devices()):
        raise UsageError(
            f"--devices {settings.devices} but only {len(jax.devices())} device(s) are "
            "available (on CPU set XLA_FLAGS=--xla_force_host_platform_device_count=N "
            "before starting)"
        )
    start = time.perf_counter()
    try:
        model, y0s, patterns = _build(settings, jr.key(settings.seed))
    except ValueError as e:
        raise UsageError(str(e).splitlines()[0]) from None
    solver, controller, dt0 = _solver(settings)
    ts = jnp.linspace(0.0, settings.t1, settings.saves)

    import hopkur.distributed as hd

    if distributed:
        mesh = hd.global_mesh()
    else:
        mesh = None if settings.devices == 1 else settings.devices
    # Every process of a distributed run compiles the same program: no progress bar.
    silent = quiet or distributed
    meter = dfx.NoProgressMeter() if silent else dfx.TqdmProgressMeter()

    noisy = {}
    if settings.noise:
        noisy = dict(noise=settings.noise, key=jr.fold_in(jr.key(settings.seed), 1))

    def solve():
        return hopkur.simulate_batch(
            model,
            y0s,
            devices=mesh,
            t1=settings.t1,
            dt0=dt0,
            solver=solver,
            stepsize_controller=controller,
            saveat=dfx.SaveAt(ts=ts),
            max_steps=settings.max_steps,
            throw=False,
            progress_meter=meter,
            retract=not settings.no_retract,
            **noisy,
        )

    if out is None:  # a process other than 0: solve its share, write nothing
        hd.gather_to_process_zero(solve())
        return 0

    with out.opened():
        solve_start = time.perf_counter()
        sol = solve()
        if distributed:  # process 0: the whole batch, on its host
            gathered = hd.gather_to_process_zero(sol)
            assert isinstance(gathered, dfx.Solution)
            sol = gathered
        jax.block_until_ready(sol.ys)
        solve_time = time.perf_counter() - solve_start
        report = hopkur.lyapunov_report(model, sol)
        energies = np.asarray(report.energies)
        finite = bool(
            np.isfinite(energies).all()
            and all(np.isfinite(np.asarray(a)).all() for a in jax.tree.leaves(sol.ys))
        )
        ys = sol.ys
        assert ys is not None
        x = ys[1] if settings.model == "coupled" else ys
        oscillators = settings.model != "hopfield"
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

        verdict = report.verdict if finite else "non-finite"
        if settings.noise and finite:
            verdict = (
                "not applicable: with --noise the energy fluctuates (a stochastic "
                "solve); see max_increase"
            )
        metrics = {
            "command": "simulate",
            "hopkur_version": hopkur.__version__,
            "config": to_dict(settings),
            "model": {
                "kind": settings.model,
                "class": type(model).__name__,
                "n": settings.n,
                "dim": None if settings.model == "hopfield" else settings.dim,
                "is_gradient_system": report.is_gradient_system,
            },
            "batch": settings.batch,
            "initial_energy": [float(v) for v in energies[:, 0]],
            "final_energy": finite_last(energies),
            "final_energy_mean": _mean(finite_last(energies)),
            "order_parameter_final": None if orders is None else finite_last(orders),
            "order_parameter_final_mean": None
            if orders is None
            else _mean(finite_last(orders)),
            "lyapunov": {
                "verdict": verdict,
                "decreasing": report.decreasing and finite,
                "is_gradient_system": report.is_gradient_system,
                "max_increase": report.max_increase,
                "max_increase_time": report.max_increase_time,
                "tolerance": report.tolerance,
                "finite": bool(report.finite) and finite,
            },
            "solve_succeeded": bool(ok.all()),
            "failed_trajectories": [int(i) for i in np.flatnonzero(~ok)],
            "num_steps": [int(v) for v in np.asarray(sol.stats["num_steps"])],
            "wall_time_s": None,
            "solve_time_s": solve_time,
            "jax": {
                "version": jax.__version__,
                "backend": jax.default_backend(),
                "devices": jax.device_count() if distributed else settings.devices,
                "processes": settings.processes,
                "x64": bool(jax.config.read("jax_enable_x64")),
                "dtype": str(energies.dtype),
            },
        }
        theory = _theory(settings)
        if orders is not None:
            late = np.asarray(ts) >= settings.t1 / 2
            values = orders[:, late]
            good = values[np.isfinite(values)]
            theory["measured_order_parameter"] = (
                float(good.mean()) if good.size else None
            )
            theory["measured_over"] = "t >= t1/2, all trajectories"
            if theory["order_parameter"] is not None and good.size:
                theory["deviation"] = (
                    theory["measured_order_parameter"] - theory["order_parameter"]
                )
        metrics["theory"] = theory
        if oscillators:
            norms = np.linalg.norm(np.asarray(x), axis=-1)
            drift = np.abs(norms - 1)[np.isfinite(norms)]
            metrics["max_norm_drift"] = float(drift.max()) if drift.size else None
        if patterns is not None:
            h = np.asarray(ys[0] if settings.model == "coupled" else ys)[:, -1]
            m = np.abs(np.asarray(hopkur.pattern_overlaps(np.sign(h), patterns)))
            metrics["best_pattern_overlap"] = [float(v) for v in m.max(axis=-1)]

        buffer = io.BytesIO()
        np.savez(
            buffer,
            ts=np.asarray(ts),
            energies=energies,
            order_parameter=np.zeros((0,)) if orders is None else orders,
        )
        out.write_bytes("timeseries.npz", buffer.getvalue())
        if not settings.no_figures:
            final_x = initial_x = None
            if oscillators:
                final_x = np.asarray(x[0, -1])
                initial_x = np.asarray(x[0, 0])
            _figures(
                out,
                settings,
                np.asarray(ts),
                energies,
                orders,
                final_x,
                initial_x,
                theory,
            )
        metrics["wall_time_s"] = time.perf_counter() - start
        bad = out.write_json("metrics.json", metrics)
        if bad or not finite:
            print(
                "hopkur simulate: error: the solve produced non-finite states or "
                "energies (a blow-up: lower --dt or the coupling strengths); they are "
                f"null in {out.file('metrics.json')} and the run is not marked "
                "complete",
                file=sys.stderr,
            )
            return 1
        out.complete()
    if not quiet:
        r = metrics["order_parameter_final_mean"]
        print(
            f"hopkur simulate: {settings.batch} x {settings.model} (N = {settings.n}) "
            f"to t = {settings.t1:g} in {solve_time:.2f} s; Lyapunov: {verdict}"
            + ("" if r is None else f"; mean final R = {r:.3f}")
            + _theory_line(metrics["theory"])
            + f"\nresults in {out.path}",
            file=sys.stderr,
        )
    return 0


def _theory_line(theory: dict) -> str:
    measured = theory.get("measured_order_parameter")
    if measured is None:
        return ""
    line = f"\nR averaged over t >= t1/2: {measured:.4f}; "
    if theory["order_parameter"] is None:
        return line + f"no theory applies ({theory['reason']})"
    return line + (
        f"theory ({theory['name']}): {theory['order_parameter']:.4f} "
        f"(deviation {theory['deviation']:+.4f})"
    )


def _mean(values) -> float | None:
    good = [v for v in values if v is not None]
    return sum(good) / len(good) if good else None
