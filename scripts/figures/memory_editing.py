"""Memory editing on the built-in digits: all four edits of the research note.

Pre-trains the Hopfield classifier of `hopkur demo` (or takes it from the cache),
freezes it, and trains an oscillator correction for each task (swap 0<->1, conflate
1->0) and variant (non-associative; associative: only with a context image of a "1"),
with the defaults of `hopkur edit` (300 steps non-associative, 400 associative). Draws
the frozen network's and the edited network's accuracy on the edited task and on the
untouched digits, and writes every number to `docs/figures/memory_editing.json` (the
table of docs/reproducing.md).

    python scripts/figures/memory_editing.py          # about 8 minutes on 2 CPU cores
    python scripts/figures/memory_editing.py --fast   # 1/10 of the steps

The additive all-to-all correction (the note's low-rank reading) and the raw context
image write `memory_editing_additive.json`, `memory_editing_image.json`, ...:

    python scripts/figures/memory_editing.py --mode additive --alpha 0.01
    python scripts/figures/memory_editing.py --context image --only associative

The JSON file is rewritten after every edit, so an interrupted run keeps the finished
ones.
"""

import argparse
import dataclasses
import json
import time
from pathlib import Path

import matplotlib


matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from hopkur.experiments import (
    ClassifyConfig,
    EditConfig,
    load_dataset,
    pretrained_hopfield_classifier,
    run_edit,
)


FIGURES = Path(__file__).resolve().parents[2] / "docs" / "figures"
EDITS = [
    ("swap", "non-associative", 300),
    ("swap", "associative", 400),
    ("conflate", "non-associative", 300),
    ("conflate", "associative", 400),
]
TARGETS = {"non-associative": 0.95, "associative": 0.90}


def main() -> None:
    assert __doc__ is not None
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fast", action="store_true", help="1/10 of the steps")
    parser.add_argument(
        "--cache-dir", default=None, help="cache of pre-trained networks"
    )
    parser.add_argument(
        "--mode",
        default="multiplicative",
        choices=("multiplicative", "additive"),
        help="the correction (additive: the all-to-all rank-<=D one)",
    )
    parser.add_argument(
        "--context",
        default="encoder",
        choices=("encoder", "image"),
        help="associative context: a trained encoder, or the raw image",
    )
    parser.add_argument(
        "--alpha",
        type=float,
        default=EditConfig.alpha,
        help="initial alpha of the correction",
    )
    parser.add_argument(
        "--only",
        default=None,
        choices=("non-associative", "associative"),
        help="run only the edits of one variant",
    )
    args = parser.parse_args()
    scale = 10 if args.fast else 1

    t0 = time.perf_counter()
    pretrain = ClassifyConfig(eval_every=0)
    if args.fast:
        pretrain = dataclasses.replace(pretrain, steps=pretrain.steps // scale)
    data = load_dataset(pretrain)
    frozen, pmetrics, cached = pretrained_hopfield_classifier(
        pretrain, data, cache_dir=args.cache_dir, progress=True
    )
    print(
        f"pre-trained Hopfield classifier: test accuracy "
        f"{100 * pmetrics['test_accuracy']:.1f} % ({'cached' if cached else 'trained'})"
    )
    name = "memory_editing"
    if args.mode != "multiplicative":
        name += f"_{args.mode}"
    if args.context != "encoder":
        name += f"_{args.context}"
    FIGURES.mkdir(parents=True, exist_ok=True)

    def write(results):
        # after every edit, so that an interrupted run keeps its finished edits
        summary = {
            "mode": args.mode,
            "context": args.context,
            "alpha": args.alpha,
            "pretrain": dataclasses.asdict(pretrain),
            "original_test_accuracy": pmetrics["test_accuracy"],
            "edits": results,
            "fast": args.fast,
            "seconds": time.perf_counter() - t0,
        }
        path = FIGURES / f"{name}.json"
        path.write_text(json.dumps(summary, indent=2) + "\n")
        return summary

    results = []
    for task, variant, steps in EDITS:
        if args.only is not None and variant != args.only:
            continue
        config = EditConfig(
            task=task,
            variant=variant,
            steps=steps // scale,
            mode=args.mode,
            context=args.context,
            alpha=args.alpha,
        )
        _, metrics, _ = run_edit(config, frozen, data, progress=True)
        base, edited = metrics["baseline"], metrics["edited"]
        print(
            f"{task:8s} {variant:15s}: edited task {100 * base['edited_task']:.1f} -> "
            f"{100 * edited['edited_task']:.1f} %, untouched "
            f"{100 * base['untouched']:.1f} -> {100 * edited['untouched']:.1f} %"
        )
        results.append(
            {
                "task": task,
                "variant": variant,
                "steps": config.steps,
                "mode": metrics["mode"],
                "context": config.context,
                "baseline": base,
                "edited": edited,
                "parameters": metrics["parameters"],
                "full_update_parameters": metrics["full_update_parameters"],
                "train_seconds": metrics["train_seconds"],
            }
        )
        write(results)

    summary = write(results)

    labels = [f"{r['task']}\n{r['variant']}" for r in results]
    x = np.arange(len(results))
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
    for ax, key, title in (
        (axes[0], "edited_task", "edited task"),
        (axes[1], "untouched", "untouched digits (2-9)"),
    ):
        before = [100 * r["baseline"][key] for r in results]
        after = [100 * r["edited"][key] for r in results]
        ax.bar(x - 0.2, before, 0.4, label="frozen network", color="0.7")
        ax.bar(x + 0.2, after, 0.4, label="with oscillator correction", color="C0")
        for xi, b, a in zip(x, before, after):
            ax.text(xi - 0.2, b + 0.5, f"{b:.0f}", ha="center", fontsize=8)
            ax.text(xi + 0.2, a + 0.5, f"{a:.1f}", ha="center", fontsize=8)
        if key == "edited_task":
            for xi, r in zip(x, results):
                goal = 100 * TARGETS[r["variant"]]
                ax.hlines(goal, xi - 0.45, xi + 0.45, colors="C3", linestyles=":")
        ax.set_xticks(x, labels, fontsize=8)
        ax.set_title(title)
        ax.set_ylim(50, 104)
    axes[0].set_ylabel("test accuracy (%)")
    axes[0].legend(loc="lower left", fontsize=8)
    fig.suptitle(
        f"Memory editing on the built-in digits (frozen network "
        f"{100 * pmetrics['test_accuracy']:.1f} % on the original task; "
        "dotted: targets)",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(FIGURES / f"{name}.png", dpi=120)
    print(f"wrote {FIGURES / name}.png in {summary['seconds']:.0f} s")


if __name__ == "__main__":
    main()
