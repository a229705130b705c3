"""`hopkur sudoku solve|train|eval`: the AKOrN Sudoku solver.

- `solve PUZZLE`: solves one puzzle with the shipped checkpoint (or `--checkpoint`),
  without training, in under a minute: rounds of `--votes` random starts, each voted by
  energy, until a start's board is a valid Sudoku, `--max-starts` starts or
  `--time-limit` seconds. A result is reported as solved only if it is a valid Sudoku
  agreeing with the givens; otherwise the command says so, lists the rows, columns and
  boxes with repeated digits and any changed given, and exits with code 1. `--exact`
  uses the exact solver instead and says so. Bad puzzles: one line, exit code 2.
- `train`: trains a model, writing `config.json`, `checkpoint.eqx`, `metrics.jsonl` and
  `metrics.json` atomically to `--out`; `--resume` continues a run.
- `eval`: board and cell accuracy on a split for several test-time iteration counts and
  numbers of votes, written to `--out/eval.json`.
"""

import argparse
import dataclasses
import json
import sys
from pathlib import Path

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


def _defaults() -> dict:
    from ..experiments.sudoku_run import DEFAULTS

    return DEFAULTS


def _choices(name: str) -> tuple[str, ...]:
    """The allowed values of a recipe key (`LOSSES`, `ATTENTION` of
    `hopkur.experiments.sudoku_run`)."""
    from ..experiments import sudoku_run

    return getattr(sudoku_run, name)


@dataclasses.dataclass(frozen=True)
class SudokuTrainSettings:
    """The settings of `hopkur sudoku train` (defaults: the shipped model's recipe,
    `hopkur.experiments.sudoku_run.DEFAULTS`)."""

    model: str = setting(
        _defaults()["model"],
        "AKOrN or the transformer baseline",
        choices=("akorn", "transformer"),
    )
    coupling: str = setting(
        _defaults()["coupling"],
        f"AKOrN coupling (default: {_defaults()['coupling']}, the shipped model's)",
        choices=("relational", "attention"),
    )
    attention: str = setting(
        _defaults()["attention"],
        "AKOrN/transformer attention masked to each cell's row/column/box peers, or "
        "over all 81 cells (told apart by learned positional embeddings)",
        choices=_choices("ATTENTION"),
    )
    omega: str = setting(
        _defaults()["omega"],
        "natural frequencies: none, one learned global Omega (shared), or one per "
        "oscillator group",
        choices=("none", "shared", "group"),
    )
    channels: int = setting(
        _defaults()["channels"], "channels per cell", minimum=1, maximum=4096
    )
    dim: int = setting(
        _defaults()["dim"], "oscillator dimension n", minimum=2, maximum=1024
    )
    steps: int = setting(
        _defaults()["steps"], "Kuramoto steps per iteration", minimum=1, maximum=1000
    )
    blocks: int = setting(
        _defaults()["blocks"], "recurrent iterations", minimum=1, maximum=1000
    )
    gamma: float = setting(
        _defaults()["gamma"], "Kuramoto step size", above=0, maximum=1e3
    )
    loss: str = setting(
        _defaults()["loss"],
        "cross-entropy on all 81 cells after the last iteration only (the published "
        "recipe, the shipped model's), or on the blanks averaged over the iterations",
        choices=_choices("LOSSES"),
    )
    ema: float = setting(
        _defaults()["ema"],
        "decay of a moving average of the weights, saved as the checkpoint (0: none)",
        minimum=0,
        below=1,
    )
    batch: int = setting(_defaults()["batch"], "batch size", minimum=1, maximum=65536)
    lr: float = setting(_defaults()["lr"], "peak learning rate", above=0, maximum=10.0)
    train_size: int = setting(
        _defaults()["train_size"],
        "generated training puzzles before augmentation",
        minimum=1,
        maximum=10_000_000,
    )
    time_budget: float = setting(
        _defaults()["time_budget"],
        "training time in seconds (a resumed run may extend it)",
        above=0,
        maximum=1e8,
        on_resume="free",
    )
    max_iters: int = setting(
        _defaults()["max_iters"],
        "maximum iterations (a resumed run may change it)",
        minimum=1,
        on_resume="free",
    )
    eval_every: float = setting(
        _defaults()["eval_every"],
        "seconds between evaluations",
        above=0,
        maximum=1e8,
        on_resume="free",
    )
    eval_size: int = setting(
        _defaults()["eval_size"],
        "test puzzles per evaluation",
        minimum=1,
        maximum=1_000_000,
    )
    seed: int = seed_setting()
    x64: bool = x64_setting()

    def check(self) -> None:
        if self.channels % self.dim:
            raise UsageError(
                f"--channels {self.channels} must be a multiple of --dim {self.dim}"
            )


@dataclasses.dataclass(frozen=True)
class SudokuEvalSettings:
    """The settings of `hopkur sudoku eval`."""

    checkpoint: str | None = setting(
        None, "run folder (default: shipped model)", metavar="DIR"
    )
    split: str = setting("test", "data split", choices=("test", "hard"))
    n: int = setting(
        200, "the first N puzzles of the split, seed 0", minimum=1, maximum=1_000_000
    )
    blocks: str = setting(
        "1,4,8",
        "multipliers of the trained iteration count, comma separated",
    )
    votes: str = setting("1,16", "numbers of random starts, comma separated")
    seed: int = seed_setting()
    x64: bool = x64_setting()

    def check(self) -> None:
        int_list("--blocks", self.blocks)
        int_list("--votes", self.votes)


# Defaults of `hopkur sudoku solve`, chosen for solving hard puzzles (see
# docs/cli/sudoku.md for their timings): rounds of 16 starts at 8 x the trained
# iterations, up to 256 starts or 50 s.
SOLVE_VOTES = 16
SOLVE_MULTIPLIER = 8
SOLVE_MAX_STARTS = 256
SOLVE_TIME_LIMIT = 50.0


def int_list(flag: str, text: str, maximum: int = 100_000) -> list[int]:
    """Comma-separated integers in [1, maximum]."""
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise UsageError(
            f"{flag} must be comma-separated integers; got {text!r}"
        ) from None
    if not values or min(values) < 1 or max(values) > maximum:
        raise UsageError(f"{flag} needs integers in [1, {maximum}]; got {text!r}")
    return values


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "sudoku",
        help="AKOrN Sudoku solver: solve a puzzle, train, evaluate",
        description=(__doc__ or "").split("\n\n")[0],
    )
    sub = parser.add_subparsers(dest="action", metavar="ACTION")
    sub.required = True

    solve = sub.add_parser(
        "solve",
        help="solve one puzzle (81 characters, 0 or . blank)",
        formatter_class=HelpFormatter,
    )
    solve.add_argument("puzzle", help="81 cells row by row; 1-9 digits, 0 or . blanks")
    solve.add_argument(
        "--checkpoint",
        metavar="DIR",
        help="run folder with config.json and checkpoint.eqx (default: shipped model)",
    )
    solve.add_argument(
        "--votes",
        type=int,
        default=SOLVE_VOTES,
        help="random starts per round, voted by energy (default: %(default)s)",
    )
    solve.add_argument(
        "--blocks",
        type=int,
        help=f"recurrent iterations (default: {SOLVE_MULTIPLIER}x the trained number)",
    )
    solve.add_argument(
        "--max-starts",
        type=int,
        default=SOLVE_MAX_STARTS,
        help="stop after this many starts (default: %(default)s)",
    )
    solve.add_argument(
        "--time-limit",
        type=float,
        default=SOLVE_TIME_LIMIT,
        metavar="SECONDS",
        help="start no round that would end after this many seconds of solving, "
        "judged by the last round (default: %(default)s)",
    )
    solve.add_argument(
        "--exact",
        action="store_true",
        help="use the exact solver instead of the network (labelled as such)",
    )
    solve.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    solve.add_argument(
        "--json", action="store_true", help="print a JSON object instead of a grid"
    )
    solve.set_defaults(run=run_solve, command="sudoku")

    train = sub.add_parser(
        "train", help="train a Sudoku model", formatter_class=HelpFormatter
    )
    add_flags(train, SudokuTrainSettings)
    add_common_flags(train, default_out="runs/sudoku", resume=True)
    train.set_defaults(run=run_train, command="sudoku", _parser=train)

    ev = sub.add_parser(
        "eval",
        help="evaluate a model for several iteration counts and votes",
        formatter_class=HelpFormatter,
    )
    add_flags(ev, SudokuEvalSettings)
    add_common_flags(ev, default_out="runs/sudoku-eval")
    ev.set_defaults(run=run_eval, command="sudoku", _parser=ev)


def _load(checkpoint):
    from ..experiments import sudoku_run

    if checkpoint is None:
        return sudoku_run.load_shipped_model()
    folder = Path(checkpoint)
    if (
        not (folder / "config.json").exists()
        or not (folder / "checkpoint.eqx").exists()
    ):
        raise UsageError(f"--checkpoint {folder}: needs config.json and checkpoint.eqx")
    try:
        return sudoku_run.load_model(folder)
    except sudoku_run.RunStateError as e:
        raise UsageError(f"--checkpoint {folder}: cannot load it: {e}") from None
    except (ValueError, TypeError, KeyError) as e:
        text = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise UsageError(f"--checkpoint {folder}: cannot load it ({text})") from None


def _positive(name: str, value: int, maximum: int = 100_000) -> None:
    if not 1 <= value <= maximum:
        raise UsageError(f"{name} must be an integer in [1, {maximum}]; got {value}")


def run_solve(args: argparse.Namespace) -> int:
    import time

    import numpy as np

    from ..data.sudoku import (
        constraint_violations,
        format_grid,
        is_valid_solution,
        parse_puzzle,
        solve_exact,
        violated_units,
    )

    t0 = time.perf_counter()
    try:
        puzzle = parse_puzzle(args.puzzle)
    except ValueError as e:
        message = str(e).replace("`parse_puzzle(text)` ", "the puzzle ")
        raise UsageError(message.rstrip(".")) from None
    _positive("--votes", args.votes)
    _positive("--max-starts", args.max_starts, maximum=1_000_000)
    if not 0 <= args.time_limit <= 1e6:
        raise UsageError(f"--time-limit must be in [0, 1e6]; got {args.time_limit}")
    if not 0 <= args.seed <= 2**31 - 1:
        raise UsageError(f"--seed must be in [0, {2**31 - 1}]; got {args.seed}")
    exact = solve_exact(puzzle)
    if exact is None:
        raise UsageError("the puzzle has no solution")
    if args.exact:
        result = {"solver": "exact", "solved": True, "board": "".join(map(str, exact))}
        if args.json:
            print(json.dumps(result))
        else:
            print("solved by the exact solver (not the network):")
            print(format_grid(exact))
        return 0

    import jax.random as jr

    from ..experiments.sudoku_eval import describe_faults, solve_with_restarts

    model, config = _load(args.checkpoint)
    blocks = (
        args.blocks if args.blocks is not None else SOLVE_MULTIPLIER * config["blocks"]
    )
    _positive("--blocks", blocks)
    found = solve_with_restarts(
        model,
        puzzle,
        key=jr.key(args.seed),
        votes=args.votes,
        max_starts=args.max_starts,
        time_limit=max(0.0, args.time_limit - (time.perf_counter() - t0)),
        blocks=blocks,
    )
    board, solved, start, done = (
        found[k] for k in ("board", "solved", "start", "starts")
    )
    assert solved == bool(is_valid_solution(board, puzzle))
    seconds = time.perf_counter() - t0
    blanks = int(np.sum(puzzle == 0))
    result = {
        "solver": "network",
        "model": config.get("model", "akorn"),
        "solved": solved,
        "violations": int(constraint_violations(board)),
        "violated_units": [
            {"unit": kind, "index": index, "digits": digits}
            for kind, index, digits in violated_units(board)
        ],
        "changed_givens": [
            int(c) for c in np.flatnonzero((puzzle > 0) & (board != puzzle))
        ],
        "blocks": blocks,
        "votes": args.votes,
        "starts": done,
        "start": start,
        "energy": found["energy"],
        "seconds": round(seconds, 2),
        "board": "".join(map(str, board)),
    }
    if args.json:
        print(json.dumps(result))
    elif solved:
        print(
            f"solved by the network ({blanks} blanks, {blocks} iterations; start "
            f"{start + 1} of {done} run, checked valid; {seconds:.0f} s):"
        )
        print(format_grid(board))
    else:
        print(
            f"NOT solved: no valid board in {done} random starts of the network "
            f"({blocks} iterations, {seconds:.0f} s). Its lowest-energy answer breaks "
            f"{result['violations']} Sudoku constraint(s) (digit(s) repeated in "
            "brackets):"
        )
        print("\n".join(describe_faults(board, puzzle)))
        print("That answer, NOT a solution (try --max-starts, --blocks or --exact):")
        print(format_grid(board))
    return 0 if solved else 1


def _train_settings(args, out: RunFolder) -> SudokuTrainSettings:
    from ..experiments import sudoku_run

    if not out.resume:
        return resolve(SudokuTrainSettings, args)
    where = f"--resume: {out.file('config.json')}: "
    saved = out.read_json("config.json")
    try:
        saved = sudoku_run.check_config(saved, str(out.path))
    except sudoku_run.RunStateError as e:
        raise UsageError(f"--resume: {e}") from None
    names = {f.name for f in dataclasses.fields(SudokuTrainSettings)}
    saved = {k: v for k, v in saved.items() if k in names}
    saved.setdefault("x64", False)
    return resolve(SudokuTrainSettings, args, saved=saved, saved_where=where)


def run_train(args: argparse.Namespace) -> int:
    out = RunFolder(
        args.out, "sudoku train", overwrite=args.overwrite, resume=args.resume
    )
    settings = _train_settings(args, out)
    setup_jax(settings)
    from ..experiments import sudoku as S, sudoku_run

    if out.resume:
        for name in ("checkpoint.eqx", "opt_state.eqx", "state.json"):
            if not out.file(name).exists():
                raise UsageError(f"--resume: no {name} in {out.path}")
        try:
            sudoku_run.load_resume_state(out.path)
        except sudoku_run.RunStateError as e:
            raise UsageError(f"--resume: {e}") from None

    log = (lambda s: None) if args.quiet else (lambda s: print(s, file=sys.stderr))
    with out.opened():
        try:
            metrics = S.train(
                to_dict(settings),
                out.path,
                resume=out.resume,
                progress=not args.quiet,
                log=log,
            )
        except sudoku_run.RunStateError as e:
            raise UsageError(f"--resume: {e}") from None
        bad = out.write_json("metrics.json", metrics)
        if bad:
            from .classify import non_finite_exit

            return non_finite_exit("sudoku train", bad, out)
        out.complete()
    print(json.dumps(metrics, sort_keys=True))
    return 0


def run_eval(args: argparse.Namespace) -> int:
    out = RunFolder(args.out, "sudoku eval", overwrite=args.overwrite)
    settings = resolve(SudokuEvalSettings, args)
    setup_jax(settings)
    multipliers = int_list("--blocks", settings.blocks)
    votes = int_list("--votes", settings.votes)
    model, config = _load(settings.checkpoint)
    import jax.random as jr

    from ..data.sudoku import sudoku_dataset
    from ..experiments import sudoku as S
    from ..experiments.sudoku_eval import wilson_interval

    with out.opened():
        puzzles, solutions = sudoku_dataset(settings.split, settings.n, seed=0)
        rows = []
        combos = [(m, k) for m in multipliers for k in votes]
        if not args.quiet:
            from tqdm.auto import tqdm

            combos = tqdm(combos, desc="sudoku eval")
        for m, k in combos:
            if config.get("model") == "transformer" and k > 1:
                continue  # deterministic: voting does not apply
            blocks = m * config["blocks"]
            metrics = S.evaluate(
                model,
                puzzles,
                solutions,
                key=jr.key(settings.seed),
                blocks=blocks,
                votes=k,
            )
            solved = round(metrics["board_accuracy"] * settings.n)
            low, high = wilson_interval(solved, settings.n)
            metrics.update(board_low=low, board_high=high)
            rows.append({"blocks": blocks, "multiplier": m, "votes": k, **metrics})
        result = {
            "split": settings.split,
            "n": settings.n,
            "config": config,
            "settings": to_dict(settings),
            "rows": rows,
        }
        bad = out.write_json("eval.json", result)
        if bad:
            from .classify import non_finite_exit

            return non_finite_exit("sudoku eval", bad, out)
        out.complete()
    for row in rows:
        print(json.dumps(row, sort_keys=True))
    return 0
