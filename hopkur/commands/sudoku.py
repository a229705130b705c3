"""`hopkur sudoku solve|train|eval`: the AKOrN Sudoku solver.

- `solve PUZZLE`: solves one puzzle with the shipped checkpoint (or `--checkpoint`), in
  seconds, without training. A result is reported as solved only if it is a valid
  Sudoku agreeing with the givens; otherwise the network's answer is printed as
  unsolved with its number of violated constraints (exit code 1). `--exact` uses the
  exact solver instead and says so. Bad puzzles: one line, exit code 2.
- `train`: trains a model, writing `config.json`, `checkpoint.eqx`, `metrics.jsonl` and
  `metrics.json` atomically to `--out`; `--resume` continues a run.
- `eval`: board and cell accuracy on a split for several test-time iteration counts and
  numbers of votes, written to `--out/eval.json`.
"""

import argparse
import json
import sys
from pathlib import Path

from ._common import (
    add_common_flags,
    apply_config,
    HelpFormatter,
    OutputDir,
    setup_jax,
    UsageError,
)


# `hopkur sudoku train`'s settings: (key of `experiments.sudoku.DEFAULTS`, which gives
# the default; type or choices; help). The flag is the key with `-` for `_`.
_TRAIN_FLAGS = (
    ("model", ["akorn", "transformer"], "AKOrN or the transformer baseline"),
    ("coupling", ["relational", "attention"], "AKOrN coupling"),
    ("channels", int, "channels per cell"),
    ("dim", int, "oscillator dimension n"),
    ("steps", int, "Kuramoto steps per iteration"),
    ("blocks", int, "recurrent iterations"),
    ("gamma", float, "Kuramoto step size"),
    ("batch", int, "batch size"),
    ("lr", float, "peak learning rate"),
    ("train_size", int, "generated training puzzles before augmentation"),
    ("time_budget", float, "training time in seconds"),
    ("max_iters", int, "maximum iterations"),
    ("eval_every", float, "seconds between evaluations"),
    ("eval_size", int, "test puzzles per evaluation"),
)


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "sudoku",
        help="AKOrN Sudoku solver: solve a puzzle, train, evaluate",
        description=__doc__.split("\n\n")[0],
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
        default=16,
        help="energy-based voting: random starts (default: 16)",
    )
    solve.add_argument(
        "--blocks",
        type=int,
        help="recurrent iterations (default: 4x the trained number)",
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
    add_common_flags(train, default_out="runs/sudoku")
    from ..experiments.sudoku import DEFAULTS

    for key, kind, text in _TRAIN_FLAGS:
        options = {"choices": kind} if isinstance(kind, list) else {"type": kind}
        if key == "coupling":
            text += f" (default: {DEFAULTS[key]}, the shipped model's)"
        train.add_argument(
            "--" + key.replace("_", "-"), default=DEFAULTS[key], help=text, **options
        )
    train.add_argument(
        "--resume", action="store_true", help="continue the run in --out"
    )
    train.set_defaults(run=run_train, command="sudoku", _parser=train)

    ev = sub.add_parser(
        "eval",
        help="evaluate a model for several iteration counts and votes",
        formatter_class=HelpFormatter,
    )
    add_common_flags(ev, default_out="runs/sudoku-eval")
    ev.add_argument(
        "--checkpoint", metavar="DIR", help="run folder (default: shipped model)"
    )
    ev.add_argument(
        "--split",
        choices=["test", "hard"],
        default="test",
        help="data split (default: test)",
    )
    ev.add_argument(
        "--n",
        type=int,
        default=200,
        help="the first N puzzles of the split, seed 0 (default: 200)",
    )
    ev.add_argument(
        "--blocks",
        default="1,4,8",
        help="multipliers of the trained iteration count, comma separated (1,4,8)",
    )
    ev.add_argument(
        "--votes",
        default="1,16",
        help="numbers of random starts, comma separated (default: 1,16)",
    )
    ev.set_defaults(run=run_eval, command="sudoku", _parser=ev)


def _load(checkpoint):
    from ..experiments import sudoku as S

    if checkpoint is None:
        return S.load_shipped_model()
    folder = Path(checkpoint)
    if (
        not (folder / "config.json").exists()
        or not (folder / "checkpoint.eqx").exists()
    ):
        raise UsageError(f"--checkpoint {folder}: needs config.json and checkpoint.eqx")
    try:
        return S.load_model(folder)
    except (ValueError, RuntimeError, OSError) as e:
        raise UsageError(f"--checkpoint {folder}: cannot load ({e})") from None


def _positive(name: str, value: int) -> None:
    if value < 1:
        raise UsageError(f"{name} must be a positive integer; got {value}")


def run_solve(args: argparse.Namespace) -> int:
    import numpy as np

    from ..data.sudoku import (
        constraint_violations,
        format_grid,
        is_valid_solution,
        parse_puzzle,
        solve_exact,
    )

    try:
        puzzle = parse_puzzle(args.puzzle)
    except ValueError as e:
        message = str(e).replace("`parse_puzzle(text)` ", "the puzzle ")
        raise UsageError(message.rstrip(".")) from None
    _positive("--votes", args.votes)
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

    from ..experiments import sudoku as S

    model, config = _load(args.checkpoint)
    blocks = args.blocks if args.blocks is not None else 4 * config["blocks"]
    _positive("--blocks", blocks)
    boards, energies = S.predict(
        model, puzzle[None], key=jr.key(args.seed), blocks=blocks, votes=args.votes
    )
    board = boards[0]
    solved = bool(is_valid_solution(board, puzzle))
    violations = int(constraint_violations(board))
    blanks = int(np.sum(puzzle == 0))
    result = {
        "solver": "network",
        "model": config.get("model", "akorn"),
        "solved": solved,
        "violations": violations,
        "blocks": blocks,
        "votes": args.votes,
        "energy": float(energies[0]),
        "board": "".join(map(str, board)),
    }
    if args.json:
        print(json.dumps(result))
    elif solved:
        print(
            f"solved by the network ({blanks} blanks, {blocks} iterations, "
            f"{args.votes} votes):"
        )
        print(format_grid(board))
    else:
        print(
            f"NOT solved: the network's answer breaks {violations} Sudoku "
            f"constraint(s) (shown below, not a solution; try --votes, --blocks or "
            f"--exact):"
        )
        print(format_grid(board))
    return 0 if solved else 1


def _config_from_args(args: argparse.Namespace) -> dict:
    keys = [key for key, _, _ in _TRAIN_FLAGS] + ["seed"]
    return {k: getattr(args, k) for k in keys}


def run_train(args: argparse.Namespace) -> int:
    args = apply_config(args._parser, args)
    setup_jax(args)
    for name in (
        "channels",
        "steps",
        "blocks",
        "batch",
        "train_size",
        "max_iters",
        "eval_size",
    ):
        _positive("--" + name.replace("_", "-"), getattr(args, name))
    if args.channels % args.dim:
        raise UsageError(
            f"--channels {args.channels} must be a multiple of --dim {args.dim}"
        )
    if args.time_budget <= 0:
        raise UsageError(f"--time-budget must be positive; got {args.time_budget}")
    out = OutputDir(args.out, overwrite=args.overwrite, resume=args.resume)
    if args.resume and not (out.path / "checkpoint.eqx").exists():
        raise UsageError(f"--resume: no checkpoint.eqx in {out.path}")
    from ..experiments import sudoku as S

    log = (lambda s: None) if args.quiet else (lambda s: print(s, file=sys.stderr))
    try:
        metrics = S.train(
            _config_from_args(args),
            out.path,
            resume=args.resume,
            progress=not args.quiet,
            log=log,
        )
    except BaseException:
        out.abandon()
        raise
    out.write_json("metrics.json", metrics)
    out.complete()
    print(json.dumps(metrics, sort_keys=True))
    return 0


def _int_list(flag: str, text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise UsageError(
            f"{flag} must be comma-separated integers; got {text!r}"
        ) from None
    if not values or min(values) < 1:
        raise UsageError(f"{flag} needs positive integers; got {text!r}")
    return values


def run_eval(args: argparse.Namespace) -> int:
    args = apply_config(args._parser, args)
    setup_jax(args)
    _positive("--n", args.n)
    multipliers = _int_list("--blocks", args.blocks)
    votes = _int_list("--votes", args.votes)
    model, config = _load(args.checkpoint)
    out = OutputDir(args.out, overwrite=args.overwrite)
    import jax.random as jr

    from ..data.sudoku import sudoku_dataset
    from ..experiments import sudoku as S

    try:
        puzzles, solutions = sudoku_dataset(args.split, args.n, seed=0)
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
                model, puzzles, solutions, key=jr.key(args.seed), blocks=blocks, votes=k
            )
            rows.append({"blocks": blocks, "multiplier": m, "votes": k, **metrics})
        result = {"split": args.split, "n": args.n, "config": config, "rows": rows}
        out.write_json("eval.json", result)
        out.complete()
    except BaseException:
        out.abandon()
        raise
    for row in rows:
        print(json.dumps(row, sort_keys=True))
    return 0
