"""The research note's experiments: classifiers, training, editing metrics, cache."""

import dataclasses
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from hopkur.experiments import (
    associative_pairs,
    classification_loss,
    ClassifyConfig,
    edit_labels,
    EditConfig,
    evaluate_edit,
    HopfieldClassifier,
    HopfieldKuramotoClassifier,
    KuramotoClassifier,
    load_dataset,
    make_edited_classifier,
    pretrained_hopfield_classifier,
    run_classify,
    run_edit,
    train,
)
from hopkur.experiments.training import batch_rng


# A tiny configuration: every run compiles in seconds.
TINY = ClassifyConfig(
    extra=3,
    steps=4,
    batch_size=16,
    train_limit=48,
    test_limit=24,
    eval_every=2,
    x64=True,
)
TINY_EDIT = EditConfig(dim=2, steps=3, batch_size=16, encoder_rank=2, alpha=0.1)


@pytest.fixture(scope="module")
def tiny_data():
    return load_dataset(TINY)


# ------------------------------------------------------------------ classifiers


def test_classification_loss_by_hand():
    scores = jnp.array([[0.5, -1.0, 0.0], [1.0, 1.0, -1.0]])
    labels = jnp.array([0, 2])
    # targets [1, -1, -1] and [-1, -1, 1]
    expected = ((0.25 + 0 + 1) + (4 + 4 + 4)) / 2
    np.testing.assert_allclose(classification_loss(scores, labels), expected)


@pytest.mark.parametrize(
    "cls, kwargs",
    [
        (HopfieldClassifier, {}),
        (KuramotoClassifier, {"dim": 3}),
        (HopfieldKuramotoClassifier, {"dim": 3, "graph_k": 4}),
    ],
)
def test_classifier_forward(cls, kwargs, getkey):
    model = cls(6, 2, 3, key=getkey(), **kwargs)
    images = np.random.default_rng(0).uniform(size=(4, 6))
    scores = eqx.filter_jit(lambda m, x: m(x))(model, images)
    assert scores.shape == (4, 3)
    assert np.all(np.isfinite(scores))
    # The class scores depend on the image.
    assert not np.allclose(scores[0], scores[1])
    if cls is not HopfieldClassifier:
        y0 = model.initial_state(jnp.asarray(images[0]))
        x = y0 if cls is KuramotoClassifier else y0[1]
        np.testing.assert_allclose(jnp.linalg.norm(x, axis=-1), 1.0, rtol=1e-12)
        # the reference oscillator starts at e_1; the extra ones are distinct
        np.testing.assert_array_equal(x[6], jnp.eye(3)[0])
        assert np.min(np.abs(x[7:] @ x[7:].T - 1) + np.eye(5)) > 1e-6
    if cls is KuramotoClassifier:
        assert np.all(np.abs(scores) <= 1 + 1e-9)


def test_classifier_bad_input(getkey):
    model = HopfieldClassifier(6, 2, 3, key=getkey())
    with pytest.raises((ValueError, TypeError), match="shape"):
        model(np.zeros((2, 5)))
    with pytest.raises(ValueError, match="graph_k"):
        HopfieldClassifier(6, 2, 3, graph_k=3, key=getkey())
    with pytest.raises(ValueError, match="lagrangian"):
        HopfieldClassifier(6, 2, 3, lagrangian="cosh", key=getkey())


# ------------------------------------------------------------------ training loop


class _Linear(eqx.Module):
    w: jax.Array
    frozen: jax.Array

    def trainable_filter(self):
        return _Linear(True, False)  # pyright: ignore


def _linear_problem():
    x = np.random.default_rng(0).standard_normal((64, 3))
    y = x @ np.array([1.0, -2.0, 0.5])

    def loss_fn(model, batch):
        xb, yb = batch
        return jnp.mean((xb @ model.w + model.frozen - yb) ** 2)

    def sample(step):
        idx = batch_rng(0, step).choice(64, 8, replace=False)
        return jnp.asarray(x[idx]), jnp.asarray(y[idx])

    model = _Linear(jnp.zeros(3), jnp.asarray(0.0))
    return model, loss_fn, sample


def test_train_resumes_after_a_crash(tmp_path):
    model, loss_fn, sample = _linear_problem()
    kwargs: dict[str, Any] = dict(
        optimiser=optax.adam(0.1),
        steps=7,
        filter_spec=model.trainable_filter(),
        progress=False,
    )
    full = train(model, loss_fn, sample, **kwargs)
    assert full.losses[-1] < full.losses[0]
    assert float(full.model.frozen) == 0.0  # not trained, not decayed

    def crashing(step):
        if step == 5:
            raise RuntimeError("killed")
        return sample(step)

    path = tmp_path / "checkpoint.eqx"
    with pytest.raises(RuntimeError, match="killed"):
        train(model, loss_fn, crashing, checkpoint=path, checkpoint_every=2, **kwargs)
    # The last complete checkpoint (step 4) is intact; resuming finishes the run with
    # the same batches, so the result equals the uninterrupted run.
    resumed = train(model, loss_fn, sample, checkpoint=path, resume=True, **kwargs)
    assert resumed.resumed_from == 4
    np.testing.assert_allclose(resumed.model.w, full.model.w, rtol=1e-12)
    np.testing.assert_allclose(resumed.losses, full.losses, rtol=1e-12)

    def interrupted(step):
        if step == 3:
            raise KeyboardInterrupt
        return sample(step)

    path.unlink()
    with pytest.raises(KeyboardInterrupt):
        train(
            model, loss_fn, interrupted, checkpoint=path, checkpoint_every=5, **kwargs
        )
    resumed = train(model, loss_fn, sample, checkpoint=path, resume=True, **kwargs)
    assert resumed.resumed_from == 3
    np.testing.assert_allclose(resumed.model.w, full.model.w, rtol=1e-12)


# ------------------------------------------------------------------ editing


def test_edit_labels():
    labels = np.array([0, 1, 2, 1, 0, 9])
    np.testing.assert_array_equal(edit_labels(labels, "swap"), [1, 0, 2, 0, 1, 9])
    np.testing.assert_array_equal(edit_labels(labels, "conflate"), [0, 0, 2, 0, 0, 9])
    with pytest.raises(ValueError, match="task"):
        edit_labels(labels, "rotate")


def test_associative_pairs():
    labels = np.array([0, 1, 2, 3, 1, 0, 7, 1])
    query, context, is_one, target = associative_pairs(labels, "swap", seed=0)
    n = labels.size
    np.testing.assert_array_equal(query, np.r_[np.arange(n), np.arange(n)])
    assert np.all(labels[context[:n]] == 1) and np.all(labels[context[n:]] != 1)
    np.testing.assert_array_equal(is_one, np.r_[np.ones(n), np.zeros(n)].astype(bool))
    np.testing.assert_array_equal(target[:n], edit_labels(labels, "swap"))
    np.testing.assert_array_equal(target[n:], labels)


class _Oracle:
    """Scores from the label written in pixel 0; with `edit`, answers the edited label
    (for associative queries: only when the context's pixel 0 is 1)."""

    def __init__(self, task=None):
        self.task = task

    def __call__(self, images, contexts=None):
        # Traced under jit by `predict`: jnp only.
        labels = images[:, 0].astype(jnp.int32)
        if self.task is not None:
            if self.task == "swap":
                edited = jnp.where(labels <= 1, 1 - labels, labels)
            else:
                edited = jnp.where(labels == 1, 0, labels)
            if contexts is None:
                labels = edited
            else:
                labels = jnp.where(contexts[:, 0] == 1, edited, labels)
        return jax.nn.one_hot(labels, 10)


def test_evaluate_edit_definitions():
    labels = np.repeat(np.arange(10), 3)
    images = np.zeros((labels.size, 4))
    images[:, 0] = labels
    frozen, edited = _Oracle(), _Oracle("swap")
    # Non-associative: the frozen net is wrong on exactly the 0s and 1s.
    base, _, _ = evaluate_edit(
        frozen, images, labels, "swap", "non-associative", seed=0
    )
    assert base["edited_task"] == pytest.approx(0.8)
    assert base["untouched"] == 1.0 and base["touched"] == 0.0
    after, _, _ = evaluate_edit(
        edited, images, labels, "swap", "non-associative", seed=0
    )
    assert after["edited_task"] == 1.0 and after["original_task"] == pytest.approx(0.8)
    # Associative: half the pairs carry a "1" context; the frozen net gets the 0s and 1s
    # right without it and wrong with it.
    base, _, _ = evaluate_edit(
        frozen, images, labels, "swap", "associative", seed=0, uses_context=False
    )
    assert base["edited_task"] == pytest.approx(0.9)
    assert base["context_one"] == pytest.approx(0.8) and base["context_other"] == 1.0
    after, pred, target = evaluate_edit(
        edited, images, labels, "swap", "associative", seed=0
    )
    assert after["edited_task"] == 1.0 and pred.shape == target.shape == (60,)
    # An edit that ignores the context fails the other-context half on 0s and 1s.
    always, _, _ = evaluate_edit(
        _Oracle("conflate"),
        images,
        labels,
        "conflate",
        "associative",
        seed=0,
        uses_context=False,
    )
    assert always["context_other"] == pytest.approx(0.9)


def test_edited_classifier_structure(getkey):
    frozen = HopfieldClassifier(6, 2, 3, key=getkey())
    model = make_edited_classifier(
        frozen,
        "associative",
        dim=2,
        encoder_rank=2,
        oscillator_k=4,
        mode="additive",
        key=getkey(),
    )
    correction = model.correction
    n = frozen.num_units
    assert correction.num_units == n and correction.is_low_rank
    edges = correction.kuramoto.coupling.edges  # pyright: ignore
    expected = n * 2 + 1 + edges.shape[0] + (2 * 6 + 2 + n * 2 * 2)
    assert correction.num_parameters == expected
    assert correction.num_full_update_parameters == n * n
    spec = model.trainable_filter()
    assert not any(jax.tree_util.tree_leaves(spec.correction.hopfield))
    images = np.random.default_rng(0).uniform(size=(2, 6))
    scores = eqx.filter_jit(lambda m, x, c: m(x, c))(model, images, images[::-1])
    assert scores.shape == (2, 3) and np.all(np.isfinite(scores))
    with pytest.raises(ValueError, match="variant"):
        make_edited_classifier(frozen, "sometimes", key=getkey())  # pyright: ignore


# ------------------------------------------------------------------ runs


def test_run_classify_and_edit_reproducible(tiny_data, tmp_path):
    model_a, metrics_a, result_a = run_classify(TINY, tiny_data, progress=False)
    assert isinstance(model_a, HopfieldClassifier)  # the default model="hopfield"
    model_b, metrics_b, _ = run_classify(TINY, tiny_data, progress=False)
    for key in ("train_accuracy", "test_accuracy", "learning_curve", "confusion"):
        assert metrics_a[key] == metrics_b[key]
    assert np.all(np.isfinite(result_a.losses))
    assert metrics_a["learning_curve"]["step"] == [2, 4]
    assert sum(map(sum, metrics_a["confusion"])) == 24
    other, metrics_c, _ = run_classify(
        dataclasses.replace(TINY, seed=1), tiny_data, progress=False
    )
    assert metrics_c["learning_curve"]["loss"] != metrics_a["learning_curve"]["loss"]

    config = dataclasses.replace(TINY_EDIT, variant="associative")
    edited_a, e_a, _ = run_edit(config, model_a, tiny_data, progress=False)
    edited_b, e_b, _ = run_edit(config, model_a, tiny_data, progress=False)
    assert (
        e_a["edited"] == e_b["edited"]
        and e_a["learning_curve"] == e_b["learning_curve"]
    )
    assert set(e_a["edited"]) >= {"edited_task", "untouched", "context_one"}
    assert e_a["parameters"] < e_a["full_update_parameters"] * 4
    # The frozen network is untouched by the edit.
    assert bool(eqx.tree_equal(edited_a.correction.hopfield, model_a.hopfield))
    # The baseline is the frozen classifier's own accuracy on the same pairs.
    assert e_a["baseline"]["original_task"] == pytest.approx(metrics_a["test_accuracy"])


def test_pretrained_cache(tiny_data, tmp_path):
    config = dataclasses.replace(TINY, steps=2, eval_every=0)
    model, metrics, cached = pretrained_hopfield_classifier(
        config, tiny_data, cache_dir=tmp_path, progress=False
    )
    assert not cached and len(list(tmp_path.iterdir())) == 2
    again, metrics_again, cached = pretrained_hopfield_classifier(
        config, tiny_data, cache_dir=tmp_path, progress=False
    )
    assert cached and metrics_again == metrics
    assert bool(eqx.tree_equal(again, model))
    # A corrupt file is retrained, with a warning.
    for path in tmp_path.glob("*.eqx"):
        path.write_bytes(b"garbage")
    with pytest.warns(UserWarning, match="unreadable"):
        _, _, cached = pretrained_hopfield_classifier(
            config, tiny_data, cache_dir=tmp_path, progress=False
        )
    assert not cached


# ------------------------------------------------------------------ full targets


@pytest.mark.slow
def test_digits_accuracy_targets(tmp_path):
    """Issue 4's targets on the built-in digits (several minutes)."""
    config = ClassifyConfig(eval_every=0)
    data = load_dataset(config)
    frozen, pmetrics, _ = pretrained_hopfield_classifier(
        config, data, cache_dir=tmp_path, progress=False
    )
    assert pmetrics["test_accuracy"] >= 0.97
    for task in ("swap", "conflate"):
        for variant, target, steps in (
            ("non-associative", 0.95, 400),
            ("associative", 0.90, 600),
        ):
            edit = EditConfig(task=task, variant=variant, steps=steps)
            _, m, _ = run_edit(edit, frozen, data, progress=False)
            assert m["edited"]["edited_task"] >= target, (task, variant, m)
            assert m["edited"]["untouched"] >= m["baseline"]["untouched"] - 0.02
