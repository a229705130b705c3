"""Ablation of the Kuramoto classifier on the built-in digits (issue 18, point 2).

Starts from hopkur's former defaults of `hopkur classify --model kuramoto` (dense
linear coupling, Lion at lr 1e-3 halved every 1000 steps, pixel noise 0.25, f = 2p - 1,
random class starts, D = 4, a 256-step solver budget) and switches the research code's
settings on one at a time, then all together, then those that helped on their own
(`BEST`); the `OPTIMISER` rows change the optimiser instead, the last of them being
the new defaults. Every row is
trained for the same number of steps (``--steps``, default 1000) with batches of 50 and
seed 0, and scored on the whole digits test split (451 images).

    python scripts/ablation_kuramoto.py --steps 500 --out docs/figures/ablation_kuramoto

writes ``<out>.json`` (every row's settings, accuracies and wall time) and ``<out>.txt``
(the table of docs/reproducing.md). ``--rows`` runs a subset (names as in ROWS); rows
already in ``<out>.json`` with the same settings and steps are kept, not re-run, so an
interrupted ablation continues where it stopped. Rows can run in parallel processes
with their own ``--out``; ``--merge A.json B.json ...`` then joins their rows into
``<out>`` without training.
"""

import argparse
import dataclasses
import json
import os
import time
from pathlib import Path

from hopkur.experiments import ClassifyConfig, load_dataset, run_classify


#: hopkur's defaults before issue 18 (explicit, so the table does not follow later
#: default changes).
BASE = {
    "model": "kuramoto",
    "dim": 4,
    "graph_k": 0,
    "interaction": "linear",
    "optimiser": "lion",
    "lr": 1e-3,
    "lr_schedule": "staircase",
    "decay_every": 1000,
    "noise": 0.25,
    "encoding": "signed",
    "class_start": "random",
    "max_steps": 256,
}

#: The research code's value of each setting of the issue's table.
RESEARCH = {
    "relu small-world k=150": {"graph_k": 150, "interaction": "relu"},
    "lr 1e-4, exponential decay": {"lr": 1e-4, "lr_schedule": "exponential"},
    "no input noise": {"noise": 0.0},
    "centred encoding": {"encoding": "centred"},
    "class oscillators common": {"class_start": "common"},
    "D = 5": {"dim": 5},
    "solver budget 5000": {"max_steps": 5000},
}

#: Changes that are not the research code's: the optimiser (Lion at lr 1e-3 was the
#: former default; the research code's lr 1e-4 is tried with Adam too).
OPTIMISER = {
    "Adam, lr 1e-2": {"optimiser": "adam", "lr": 1e-2},
    "Adam, lr 1e-4, exponential decay": {
        "optimiser": "adam",
        "lr": 1e-4,
        "lr_schedule": "exponential",
    },
    "new defaults: Adam, lr 1e-2, exponential decay, no noise": {
        "optimiser": "adam",
        "lr": 1e-2,
        "lr_schedule": "exponential",
        "noise": 0.0,
    },
    "new defaults with relu small-world k=150 and D = 5 (the note's size)": {
        "optimiser": "adam",
        "lr": 1e-2,
        "lr_schedule": "exponential",
        "noise": 0.0,
        "graph_k": 150,
        "interaction": "relu",
        "dim": 5,
    },
}

#: The rows: name -> changes to BASE.
ROWS = {
    "former defaults": {},
    **RESEARCH,
    "all research settings": {k: v for c in RESEARCH.values() for k, v in c.items()},
    **OPTIMISER,
}

#: The row combining the research settings that raised the test accuracy on their own
#: (computed from the single-setting rows, see `best_changes`).
BEST = "best: the single changes that helped, combined"


def best_changes(done: dict[str, dict]) -> dict | None:
    """The union of the changes of the single-setting rows whose test accuracy beats
    the former defaults, among those measured; `None` until the defaults are."""
    if "former defaults" not in done:
        return None
    base = done["former defaults"]["test_accuracy"]
    changes: dict = {}
    for name in RESEARCH:
        if name in done and done[name]["test_accuracy"] > base:
            changes.update(RESEARCH[name])
    return changes


def _row_config(changes: dict, steps: int, seed: int) -> ClassifyConfig:
    return ClassifyConfig(
        **{**BASE, **changes}, steps=steps, batch_size=50, eval_every=0, seed=seed
    )


def _table(rows: list[dict]) -> str:
    lines = [
        "| row | changed settings | test accuracy | train accuracy | wall time |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        changes = ", ".join(f"`{k}={v}`" for k, v in r["changes"].items()) or "—"
        lines.append(
            f"| {r['name']} | {changes} | {100 * r['test_accuracy']:.1f}% | "
            f"{100 * r['train_accuracy']:.1f}% | {r['wall_seconds'] / 60:.1f} min |"
        )
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="docs/figures/ablation_kuramoto")
    parser.add_argument("--rows", nargs="*", default=None, help="names of ROWS")
    parser.add_argument("--merge", nargs="*", default=[], help="JSON files to join")
    args = parser.parse_args(argv)
    out = Path(args.out)
    json_path = out.with_suffix(".json")
    done: dict[str, dict] = {}
    for path in [json_path, *map(Path, args.merge)]:
        if path.exists():
            done.update({r["name"]: r for r in json.loads(path.read_text())["rows"]})
    if args.merge:
        _write(out, done, args)
        return
    names = [*ROWS, BEST] if args.rows is None else args.rows
    data = load_dataset(_row_config({}, args.steps, args.seed))
    for name in names:
        changes = best_changes(done) if name == BEST else ROWS[name]
        if changes is None:
            print(f"{name}: needs the former defaults first", flush=True)
            continue
        config = _row_config(changes, args.steps, args.seed)
        settings = dataclasses.asdict(config)
        if name in done and done[name]["config"] == settings:
            continue
        t0 = time.perf_counter()
        _, metrics, _ = run_classify(config, data, progress=False)
        done[name] = {
            "name": name,
            "changes": changes,
            "config": settings,
            "test_accuracy": metrics["test_accuracy"],
            "train_accuracy": metrics["train_accuracy"],
            "train_seconds": metrics["train_seconds"],
            "wall_seconds": time.perf_counter() - t0,
            "load_average": list(os.getloadavg()),
        }
        print(f"{name}: test {metrics['test_accuracy']:.4f}", flush=True)
        _write(out, done, args)
    _write(out, done, args)


def _write(out: Path, done: dict, args) -> None:
    rows = [done[n] for n in [*ROWS, BEST] if n in done]
    out.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps({"steps": args.steps, "seed": args.seed, "rows": rows}, indent=1)
    out.with_suffix(".json").write_text(text + "\n")
    out.with_suffix(".txt").write_text(_table(rows))


if __name__ == "__main__":
    main()
