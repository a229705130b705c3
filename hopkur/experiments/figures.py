"""Figures of the experiments (matplotlib, Agg backend): learning curves, confusion
matrices and the oscillators' Gram matrix. Each function returns a `Figure`; save it
with `hopkur.commands._common.save_figure` (atomic PNG)."""

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def learning_curves(curves: Mapping[str, Mapping[str, Sequence[Any]]], title: str = ""):
    """Training loss (left) and evaluated accuracies (right) of several runs.

    **Arguments:**

    - `curves`: run name → its `learning_curve` dictionary (`loss` per step, and
        optionally `step` with metric lists such as `test_accuracy`).
    - `title`: the figure title.
    """
    plt = _pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for name, curve in curves.items():
        loss = np.array([np.nan if v is None else v for v in curve["loss"]], float)
        steps = np.arange(1, loss.size + 1)
        window = max(1, loss.size // 50)
        smooth = np.convolve(loss, np.ones(window) / window, mode="valid")
        (line,) = left.plot(steps[window - 1 :], smooth, label=name)
        for key, values in curve.items():
            if key in ("loss", "step") or not values:
                continue
            right.plot(
                curve["step"],
                values,
                "o-",
                color=line.get_color(),
                label=f"{name}: {key}",
            )
    left.set(xlabel="step", ylabel="training loss", yscale="log", title="loss")
    right.set(xlabel="step", ylabel="accuracy", title="test metrics")
    left.legend(fontsize=8)
    if right.lines:
        right.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    return fig


def confusion(matrix: Any, title: str = "", *, predicted_label: str = "predicted"):
    """A confusion matrix `M[true, predicted]` as an annotated heat map."""
    plt = _pyplot()
    m = np.asarray(matrix)
    fig, ax = plt.subplots(figsize=(5, 4.4))
    image = ax.imshow(m, cmap="Blues")
    for i in range(m.shape[0]):
        for j in range(m.shape[1]):
            if m[i, j]:
                colour = "white" if m[i, j] > m.max() / 2 else "black"
                ax.text(
                    j,
                    i,
                    str(m[i, j]),
                    ha="center",
                    va="center",
                    fontsize=7,
                    color=colour,
                )
    ax.set(
        xlabel=predicted_label,
        ylabel="true digit",
        xticks=range(m.shape[1]),
        yticks=range(m.shape[0]),
        title=title,
    )
    fig.colorbar(image, ax=ax, fraction=0.046)
    return fig


def gram(matrices: Mapping[str, Any], boundaries: Sequence[int] = ()):
    r"""Gram matrices $XX^\top$ of oscillators side by side (values in $[-1, 1]$), with
    lines at `boundaries` (e.g. between pixel, hidden and class units)."""
    plt = _pyplot()
    fig, axes = plt.subplots(
        1, len(matrices), figsize=(4.6 * len(matrices), 4.2), squeeze=False
    )
    image = None
    for ax, (name, g) in zip(axes[0], matrices.items()):
        image = ax.imshow(np.asarray(g), cmap="RdBu_r", vmin=-1, vmax=1)
        for b in boundaries:
            ax.axhline(b - 0.5, color="k", lw=0.5)
            ax.axvline(b - 0.5, color="k", lw=0.5)
        ax.set(title=name, xlabel="unit j", ylabel="unit i")
    if image is not None:
        fig.colorbar(image, ax=list(axes[0]), fraction=0.03)
    return fig
