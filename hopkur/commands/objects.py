"""`hopkur objects train|eval|segment`: unsupervised object discovery with AKOrN.

- `train`: trains an object-discovery network (AKOrN or its non-oscillator baseline,
  with a convolutional or an attention coupling) with the contrastive objective on
  generated multi-object images, writing `config.json`, `train_state.eqx` (atomic
  checkpoints; `--resume` continues an interrupted run), `model.eqx`, `history.json`
  and `metrics.json` to `--out`.
- `eval`: FG-ARI and MBO of a trained model on a split, for one or several numbers of
  test-time steps, beside the two trivial references (k-means over the foreground
  pixels' colours, and over their positions), written to `--out/metrics.json`.
- `segment --images FILE.npy`: segments a `(B, H, W, C)` float array in [0, 1],
  writing `masks.npy` (`(B, H, W)` integers) and `segments.png` (image | predicted
  segments | oscillator states coloured by their first three principal components).

Bad input (an image array of the wrong rank, channels, size or value range,
`--clusters` below 1, a checkpoint of another model): one line, exit code 2, and no
output folder left looking complete.
"""

import argparse
import dataclasses
import io
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
    to_dict,
    UsageError,
)


def _defaults() -> dict:
    from ..experiments.objects._training import DEFAULTS

    return DEFAULTS


@dataclasses.dataclass(frozen=True)
class ObjectsTrainSettings:
    """The settings of `hopkur objects train` (defaults:
    `hopkur.experiments.objects._training.DEFAULTS`)."""

    dataset: str = setting(
        _defaults()["dataset"], "data set", choices=("tetrominoes", "shapes")
    )
    model: str = setting(
        _defaults()["model"],
        "AKOrN or the non-oscillator baseline (ItrConv / ItrSA)",
        choices=("akorn", "baseline"),
    )
    coupling: str = setting(
        _defaults()["coupling"], "coupling J", choices=("conv", "attention")
    )
    channels: int = setting(
        _defaults()["channels"], "channels per patch", minimum=1, maximum=4096
    )
    dim: int = setting(
        _defaults()["dim"], "oscillator dimension n", minimum=2, maximum=1024
    )
    patch: int = setting(_defaults()["patch"], "patch size", minimum=1, maximum=64)
    steps: int = setting(
        _defaults()["steps"], "updates T per image", minimum=0, maximum=1000
    )
    gamma: float = setting(_defaults()["gamma"], "step size", above=0, maximum=1e3)
    kernel_size: int = setting(
        _defaults()["kernel_size"],
        "odd kernel size of the conv coupling",
        minimum=1,
        maximum=63,
    )
    heads: int = setting(
        _defaults()["heads"], "attention heads", minimum=1, maximum=256
    )
    batch: int = setting(
        _defaults()["batch"],
        "images per step (two views each)",
        minimum=2,
        maximum=65536,
    )
    lr: float = setting(_defaults()["lr"], "learning rate (Adam)", above=0, maximum=10)
    temperature: float = setting(
        _defaults()["temperature"], "contrastive temperature", above=0, maximum=100
    )
    train_steps: int = setting(
        _defaults()["train_steps"], "training steps", minimum=1, maximum=10_000_000
    )
    eval_every: int = setting(
        _defaults()["eval_every"], "steps between validation evaluations", minimum=1
    )
    checkpoint_every: int = setting(
        _defaults()["checkpoint_every"],
        "steps between checkpoints (a resumed run may change it)",
        minimum=1,
        on_resume="free",
    )
    eval_size: int = setting(
        _defaults()["eval_size"],
        "validation images per evaluation",
        minimum=1,
        maximum=1000,
    )
    train_size: int = setting(
        _defaults()["train_size"], "training images", minimum=1, maximum=60_000
    )
    average: float = setting(
        _defaults()["average"],
        "decay of the parameters' moving average (0: none)",
        minimum=0,
        below=1,
    )
    features: str = setting(
        _defaults()["features"],
        "what is clustered: final states or readout features",
        choices=("states", "readout"),
    )
    seed: int = seed_setting()

    def check(self) -> None:
        if self.model == "akorn" and self.channels % self.dim:
            raise UsageError(
                f"--channels {self.channels} must be a multiple of --dim {self.dim}"
            )
        from ..experiments.objects._training import DATASETS

        (h, w, _), _ = DATASETS[self.dataset]
        if h % self.patch or w % self.patch:
            raise UsageError(
                f"--patch {self.patch} must divide the {self.dataset} images' size "
                f"{h}x{w}"
            )
        if self.coupling == "conv" and self.kernel_size % 2 == 0:
            raise UsageError(f"--kernel-size must be odd; got {self.kernel_size}")
        if self.coupling == "attention" and self.channels % self.heads:
            raise UsageError(
                f"--channels {self.channels} must be a multiple of --heads {self.heads}"
            )


@dataclasses.dataclass(frozen=True)
class ObjectsEvalSettings:
    """The settings of `hopkur objects eval`."""

    checkpoint: str | None = setting(
        None,
        "run folder of `hopkur objects train` (default: shipped model)",
        metavar="DIR",
    )
    split: str = setting("test", "data split", choices=("validation", "test"))
    n: int = setting(1000, "the first N images of the split", minimum=1, maximum=1000)
    clusters: int | None = setting(
        None,
        "segments per image (default: objects + 1 of the data set)",
        minimum=1,
        maximum=1000,
    )
    steps: str = setting(
        "", "test-time step counts T_eval, comma separated (default: the trained T)"
    )
    features: str | None = setting(
        None, "states or readout (default: the run's)", choices=("states", "readout")
    )
    method: str = setting(
        "agglomerative", "clustering method", choices=("agglomerative", "kmeans")
    )
    seed: int = seed_setting()

    def check(self) -> None:
        if self.steps:
            int_list("--steps", self.steps)


def check_clusters(n: int) -> None:
    if n < 1:
        raise UsageError(f"--clusters must be at least 1; got {n}")


def int_list(flag: str, text: str, maximum: int = 10_000) -> list[int]:
    """Comma-separated integers in [0, maximum]."""
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise UsageError(
            f"{flag} must be comma-separated integers; got {text!r}"
        ) from None
    if not values or min(values) < 0 or max(values) > maximum:
        raise UsageError(f"{flag} needs integers in [0, {maximum}]; got {text!r}")
    return values


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "objects",
        help="AKOrN object discovery: train, evaluate (FG-ARI, MBO), segment images",
        description=(__doc__ or "").split("\n\n")[0],
    )
    sub = parser.add_subparsers(dest="action", metavar="ACTION")
    sub.required = True

    train = sub.add_parser(
        "train", help="train an object-discovery network", formatter_class=HelpFormatter
    )
    add_flags(train, ObjectsTrainSettings)
    add_common_flags(train, default_out="runs/objects", resume=True)
    train.set_defaults(run=run_train, command="objects", _parser=train)

    ev = sub.add_parser(
        "eval",
        help="FG-ARI and MBO of a model and of the trivial references",
        formatter_class=HelpFormatter,
    )
    add_flags(ev, ObjectsEvalSettings)
    add_common_flags(ev, default_out="runs/objects-eval")
    ev.set_defaults(run=run_eval, command="objects", _parser=ev)

    seg = sub.add_parser(
        "segment",
        help="segment the images of a .npy file (B, H, W, C) in [0, 1]",
        formatter_class=HelpFormatter,
    )
    seg.add_argument(
        "--images", required=True, metavar="FILE", help="a .npy float array"
    )
    seg.add_argument(
        "--checkpoint",
        metavar="DIR",
        help="run folder of `hopkur objects train` (default: shipped model)",
    )
    seg.add_argument(
        "--clusters",
        type=int,
        help="segments per image (default: objects + 1 of the model's data set)",
    )
    seg.add_argument(
        "--features",
        choices=("states", "readout"),
        help="what is clustered (default: the run's)",
    )
    seg.add_argument("--steps", type=int, help="updates T (default: the trained T)")
    seg.add_argument("--seed", type=int, default=0, help="random seed")
    add_common_flags(seg, default_out="runs/objects-segment")
    seg.set_defaults(run=run_segment, command="objects", _parser=seg)


def _load(checkpoint):
    from ..experiments.objects import _training as T

    if checkpoint is None:
        try:
            return T.load_shipped_model()
        except T.RunStateError as e:
            raise UsageError(str(e)) from None
    folder = Path(checkpoint)
    if not folder.is_dir():
        raise UsageError(f"--checkpoint {folder}: no such run folder")
    try:
        return T.load_model(folder)
    except T.RunStateError as e:
        raise UsageError(f"--checkpoint {folder}: cannot load it: {e}") from None


def _train_settings(args, out: RunFolder) -> ObjectsTrainSettings:
    from ..experiments.objects import _training as T

    if not out.resume:
        return resolve(ObjectsTrainSettings, args)
    where = f"--resume: {out.file('config.json')}: "
    saved = out.read_json("config.json")
    try:
        T.check_config(saved, str(out.path))
    except T.RunStateError as e:
        raise UsageError(f"--resume: {e}") from None
    names = {f.name for f in dataclasses.fields(ObjectsTrainSettings)}
    saved = {k: v for k, v in saved.items() if k in names}
    return resolve(ObjectsTrainSettings, args, saved=saved, saved_where=where)


def run_train(args: argparse.Namespace) -> int:
    out = RunFolder(
        args.out, "objects train", overwrite=args.overwrite, resume=args.resume
    )
    settings = _train_settings(args, out)
    if out.resume and not out.file("train_state.eqx").exists():
        raise UsageError(f"--resume: no train_state.eqx in {out.path}")
    from ..experiments.objects import _training as T

    log = (lambda s: None) if args.quiet else (lambda s: print(s, file=sys.stderr))
    with out.opened():
        try:
            metrics = T.train_objects(
                to_dict(settings),
                out.path,
                resume=out.resume,
                progress=not args.quiet,
                log=log,
            )
        except T.RunStateError as e:
            raise UsageError(f"--resume: {e}") from None
        bad = out.write_json("metrics.json", metrics)
        if bad:
            from .classify import non_finite_exit

            return non_finite_exit("objects train", bad, out)
        out.complete()
    print(json.dumps(metrics, sort_keys=True))
    return 0


def run_eval(args: argparse.Namespace) -> int:
    out = RunFolder(args.out, "objects eval", overwrite=args.overwrite)
    settings = resolve(ObjectsEvalSettings, args)
    model, config = _load(settings.checkpoint)
    from ..experiments.objects import _training as T

    clusters = settings.clusters or T.DATASETS[config["dataset"]][1]
    features = settings.features or config["features"]
    counts = int_list("--steps", settings.steps) if settings.steps else [model.steps]
    with out.opened():
        images, masks = T.load_data(config["dataset"], settings.split, settings.n)
        rows = []
        combos = counts
        if not args.quiet:
            from tqdm.auto import tqdm

            combos = tqdm(counts, desc="objects eval")
        for t in combos:
            scores = T.evaluate(
                model,
                images,
                masks,
                clusters,
                features=features,
                steps=t,
                method=settings.method,
                seed=settings.seed,
            )
            rows.append({"steps": t, **scores})
        refs = T.evaluate_references(images, masks, clusters, seed=settings.seed)
        trained = next((r for r in rows if r["steps"] == model.steps), rows[0])
        result = {
            "dataset": config["dataset"],
            "split": settings.split,
            "n": settings.n,
            "clusters": clusters,
            "features": features,
            "fg_ari": trained["fg_ari"],
            "mbo": trained["mbo"],
            "rows": rows,
            "references": refs,
            "config": config,
            "settings": to_dict(settings),
        }
        bad = out.write_json("metrics.json", result)
        if bad:
            from .classify import non_finite_exit

            return non_finite_exit("objects eval", bad, out)
        out.complete()
    summary = {k: result[k] for k in ("dataset", "split", "fg_ari", "mbo")}
    print(json.dumps({**summary, "references": refs}, sort_keys=True))
    return 0


def _read_images(path_text: str):
    import numpy as np

    path = Path(path_text)
    try:
        images = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise UsageError(f"--images {path}: no such file") from None
    except IsADirectoryError:
        raise UsageError(f"--images {path}: is a folder, not a .npy file") from None
    except PermissionError:
        raise UsageError(f"--images {path}: permission denied") from None
    except (ValueError, OSError, EOFError) as e:
        text = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise UsageError(f"--images {path}: not a NumPy .npy array ({text})") from None
    if not isinstance(images, np.ndarray):
        raise UsageError(f"--images {path}: holds several arrays (.npz); give one")
    return images


def run_segment(args: argparse.Namespace) -> int:
    import numpy as np

    out = RunFolder(args.out, "objects segment", overwrite=args.overwrite)
    if args.clusters is not None:
        check_clusters(args.clusters)
    if args.steps is not None and not 0 <= args.steps <= 10_000:
        raise UsageError(f"--steps must be in [0, 10000]; got {args.steps}")
    if not 0 <= args.seed <= 2**31 - 1:
        raise UsageError(f"--seed must be in [0, {2**31 - 1}]; got {args.seed}")
    images = _read_images(args.images)
    model, config = _load(args.checkpoint)
    from ..experiments.objects import _segment as S, _training as T

    try:
        S.check_images("segment", images, model.image_shape)
    except ValueError as e:
        message = str(e).replace("`segment(images)`", f"--images {args.images}")
        raise UsageError(message.rstrip(".")) from None
    images = images.astype(np.float32)
    clusters = args.clusters or T.DATASETS[config["dataset"]][1]
    features = args.features or config["features"]
    import jax.random as jr

    with out.opened():
        masks = S.segment(
            model,
            images,
            clusters,
            features=features,
            key=jr.key(args.seed),
            steps=args.steps,
            seed=args.seed,
        )
        buffer = io.BytesIO()
        np.save(buffer, masks)
        out.write_bytes("masks.npy", buffer.getvalue())
        shown = min(8, images.shape[0])
        figure = S.draw_segments(
            model,
            images[:shown],
            masks[:shown],
            key=jr.key(args.seed),
            steps=args.steps,
        )
        out.save_figure("segments.png", figure)
        info = {
            "images": images.shape[0],
            "clusters": clusters,
            "features": features,
            "steps": model.steps if args.steps is None else args.steps,
            "checkpoint": args.checkpoint,
        }
        out.write_json("segment.json", info)
        out.complete()
    print(json.dumps(info, sort_keys=True))
    return 0
