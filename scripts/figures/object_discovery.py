"""AKOrN object discovery: segments and FG-ARI against test-time steps, with the shipped
checkpoint.

Evaluates the small object-discovery checkpoint that ships with hopkur
(`hopkur objects segment` uses it) on the test split of its generated data set:
FG-ARI and MBO for T_eval in {1, 2, 4, 8, 16, 32} updates, beside the two trivial
references (k-means over the true foreground's colours alone and over its positions
alone), drawn against T_eval (`object_discovery_steps.png`); and, for six test images,
image | true masks | predicted segments | oscillator states coloured by their first
three principal components (`object_discovery.png`). The numbers go to
`docs/figures/object_discovery.json`.

    python scripts/figures/object_discovery.py           # 200 test images, ~2 minutes
    python scripts/figures/object_discovery.py --fast    # 16 images, T in {2, 8}
"""

import argparse
import json
import time
from pathlib import Path

import jax.random as jr
import matplotlib


matplotlib.use("Agg")
import matplotlib.pyplot as plt

from hopkur.experiments.objects import evaluate, evaluate_references, segment
from hopkur.experiments.objects._segment import draw_segments
from hopkur.experiments.objects._training import (
    DATASETS,
    load_data,
    load_shipped_model,
)


FIGURES = Path(__file__).resolve().parents[2] / "docs" / "figures"


def main() -> None:
    assert __doc__ is not None
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fast", action="store_true", help="a few images only")
    args = parser.parse_args()
    n, counts = (16, [2, 8]) if args.fast else (200, [1, 2, 4, 8, 16, 32])

    t0 = time.perf_counter()
    model, config = load_shipped_model()
    dataset = config["dataset"]
    clusters = DATASETS[dataset][1]
    images, masks = load_data(dataset, "test", n, seed=config["data_seed"])
    rows = []
    for t in counts:
        scores = evaluate(
            model, images, masks, clusters, features=config["features"], steps=t
        )
        rows.append({"steps": t, **scores})
        print(f"T_eval={t}: FG-ARI {scores['fg_ari']:.3f}, MBO {scores['mbo']:.3f}")
    references = evaluate_references(images, masks, clusters)

    fig, ax = plt.subplots(figsize=(5, 3.4))
    ax.plot(counts, [r["fg_ari"] for r in rows], "o-", label="AKOrN (shipped)")
    for (name, scores), style in zip(references.items(), (":", "--")):
        ax.axhline(scores["fg_ari"], ls=style, c="grey", label=f"{name} only")
    ax.axvline(model.steps, c="k", lw=0.6, alpha=0.4)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("test-time steps $T_{eval}$ (vertical line: $T_{train}$)")
    ax.set_ylabel("FG-ARI")
    ax.set_ylim(0, 1.02)
    ax.set_title(f"{dataset}: {n} test images", fontsize=9)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    FIGURES.mkdir(parents=True, exist_ok=True)
    fig.savefig(FIGURES / "object_discovery_steps.png", dpi=120)
    plt.close(fig)

    shown = 6
    key = jr.key(0)
    predicted = segment(
        model, images[:shown], clusters, features=config["features"], key=key
    )
    fig = draw_segments(
        model, images[:shown], predicted, key=key, true_masks=masks[:shown]
    )
    fig.savefig(FIGURES / "object_discovery.png", dpi=120)
    plt.close(fig)

    info = {
        "dataset": dataset,
        "test_images": n,
        "clusters": clusters,
        "config": config,
        "rows": rows,
        "references": references,
        "seconds": round(time.perf_counter() - t0, 1),
    }
    if not args.fast:
        text = json.dumps(info, indent=1, sort_keys=True) + "\n"
        (FIGURES / "object_discovery.json").write_text(text)
    print(f"done in {info['seconds']} s")


if __name__ == "__main__":
    main()
