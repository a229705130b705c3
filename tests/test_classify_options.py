"""Issue 18, points 2 and 4: the classifier options (learning-rate schedule, pixel
encoding, class-oscillator start, solver budget, per-model defaults) and the addition
task (pair sampler, the binding Hopfield–Kuramoto classifier, CLI errors)."""

import json

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hopkur.cli import main
from hopkur.commands import classify as classify_command
from hopkur.data import encode_hopfield
from hopkur.experiments import (
    addition_pairs,
    ClassifyConfig,
    HopfieldKuramotoClassifier,
    KuramotoClassifier,
    make_optimiser,
    oscillator_centre,
    runs,
)


SEEDS = [0, 1, 2]


def _learning_rates(schedule, lr, decay_every, steps):
    # Lion's update is -lr * sign(...) (+ weight decay, zero at zero parameters), so
    # |update| is the learning rate of the step.
    opt = make_optimiser("lion", lr, decay_every=decay_every, schedule=schedule)
    params = jnp.zeros(3)
    state = opt.init(params)
    rates = []
    for _ in range(steps):
        updates, state = opt.update(jnp.ones(3), state, params)
        rates.append(float(jnp.abs(jnp.asarray(updates)[0])))
    return np.array(rates)


@pytest.mark.parametrize("seed", SEEDS)
def test_lr_schedules(seed):
    rng = np.random.default_rng(seed)
    lr, every = float(rng.uniform(1e-3, 1e-1)), int(rng.integers(2, 5))
    t = np.arange(3 * every + 1)
    stair = _learning_rates("staircase", lr, every, t.size)
    expo = _learning_rates("exponential", lr, every, t.size)
    const = _learning_rates("constant", lr, every, t.size)
    np.testing.assert_allclose(stair, lr * 0.5 ** (t // every), rtol=1e-5)
    np.testing.assert_allclose(expo, lr * 0.5 ** (t / every), rtol=1e-5)
    np.testing.assert_allclose(const, lr, rtol=1e-6)
    # continuous: strictly decreasing, and equal to the staircase at multiples of T
    assert np.all(np.diff(expo) < 0)
    np.testing.assert_allclose(expo[::every], stair[::every], rtol=1e-5)
    with pytest.raises(ValueError, match="schedule"):
        make_optimiser("lion", lr, schedule="cosine")


@pytest.mark.parametrize("seed", SEEDS)
def test_pixel_encodings(seed, getkey):
    rng = np.random.default_rng(seed)
    train = rng.uniform(0, 1, (20, 6)) ** 2
    m = oscillator_centre("centred", train)
    assert m == pytest.approx(train.mean())
    assert oscillator_centre("signed") == 0.5
    image = rng.uniform(0, 1, 6)
    model = KuramotoClassifier(6, 2, 3, 3, key=getkey())
    for centre, f in [(0.5, 2 * image - 1), (m, np.clip((image - m) / (1 - m), -1, 1))]:
        model = KuramotoClassifier(6, 2, 3, 3, pixel_centre=centre, key=getkey())
        x = model.initial_state(jnp.asarray(image))
        np.testing.assert_allclose(x[:6, 0], f, atol=1e-6)
        np.testing.assert_allclose(jnp.linalg.norm(x, axis=1), 1, atol=1e-6)
    # the centre is fixed, not trained
    assert not model.trainable_filter().centre
    with pytest.raises(ValueError, match="encoding"):
        oscillator_centre("raw", train)
    with pytest.raises(ValueError, match="pixel_centre"):
        KuramotoClassifier(6, 2, 3, 3, pixel_centre=1.0, key=getkey())


@pytest.mark.parametrize("cls", [KuramotoClassifier, HopfieldKuramotoClassifier])
def test_common_class_start_is_no_equilibrium(cls, getkey):
    model = cls(6, 3, 4, 3, class_start="common", key=getkey())
    image = jnp.asarray(np.random.default_rng(0).uniform(0, 1, 6))
    y0 = model.initial_state(image)
    x = y0 if cls is KuramotoClassifier else y0[1]
    assert model.num_units == 6 + 1 + 3 + 4 == x.shape[0]
    # every class oscillator at the reference e1, the hidden ones distinct
    np.testing.assert_allclose(x[-4:], np.tile(np.eye(3)[0], (4, 1)), atol=1e-7)
    hidden = np.asarray(x[7:10])
    assert (
        np.min(
            np.linalg.norm(hidden[:, None] - hidden[None], axis=-1)[
                np.triu_indices(3, 1)
            ]
        )
        > 1e-3
    )
    assert model.initial.shape == (3, 3)

    # the class oscillators move, and their motion depends on the couplings
    # (at a common point of *every* oscillator both would vanish, MODELS.md §4.3)
    def class_speed(m):
        velocity = m.system.vector_field(0.0, m.initial_state(image), None)
        v = velocity if cls is KuramotoClassifier else velocity[1]
        return jnp.sum(v[-4:] ** 2)

    assert float(class_speed(model)) > 0
    grads = eqx.filter_grad(class_speed)(model)
    assert float(jnp.max(jnp.abs(grads.kuramoto.coupling.weights))) > 0
    with pytest.raises(ValueError, match="class_start"):
        cls(6, 3, 4, 3, class_start="same", key=getkey())


def test_max_steps_is_the_solver_budget(getkey):
    images = np.random.default_rng(0).uniform(0, 1, (2, 6))
    model = KuramotoClassifier(6, 2, 3, 3, max_steps=1, key=getkey())
    assert model.max_steps == 1
    with pytest.raises(Exception, match="max_steps|maximum number of"):
        jax.block_until_ready(model(images))
    assert np.all(np.isfinite(model(images, max_steps=4096)))
    config = ClassifyConfig(model="hopfield", max_steps=7, extra=2, x64=True)
    assert runs.make_classifier(config, 6).max_steps == 7  # pyright: ignore
    with pytest.raises(ValueError, match="max_steps"):
        KuramotoClassifier(6, 2, 3, 3, max_steps=0, key=getkey())


def test_per_model_defaults():
    assert classify_command.MODEL_DEFAULTS == runs.MODEL_DEFAULTS
    for model, defaults in runs.MODEL_DEFAULTS.items():
        config = ClassifyConfig(model=model)
        assert all(getattr(config, k) == v for k, v in defaults.items())
        # an explicit value wins
        assert ClassifyConfig(model=model, lr=0.5, noise=0.0).lr == 0.5
        assert ClassifyConfig(model=model, noise=0.0).noise == 0.0
    # the Hopfield defaults behind `make demo` and the documented MNIST-5k command
    hopfield = runs.MODEL_DEFAULTS["hopfield"]
    assert hopfield["lr_schedule"] == "staircase" and hopfield["decay_every"] == 1000
    assert hopfield["lr"] == 1e-3 and hopfield["noise"] == 0.25
    with pytest.raises(ValueError, match="task"):
        ClassifyConfig(task="sum")


# ---------------------------------------------------------------- addition task


@pytest.mark.parametrize("seed", SEEDS)
def test_addition_pairs(seed):
    labels = np.random.default_rng(seed).integers(0, 10, 37)
    first, second, sums = addition_pairs(labels, 200, seed=seed)
    assert first.shape == second.shape == sums.shape == (200,)
    assert first.min() >= 0 and max(first.max(), second.max()) < 37
    np.testing.assert_array_equal(sums, (labels[first] + labels[second]) % 10)
    again = addition_pairs(labels, 200, seed=seed)
    for a, b in zip(again, (first, second, sums)):
        np.testing.assert_array_equal(a, b)
    other = addition_pairs(labels, 200, seed=seed + 100)
    assert not np.array_equal(other[0], first)
    # every sum occurs: the pairs are not all of one digit
    assert len(set(sums.tolist())) > 5


@pytest.mark.parametrize("binding", [False, True])
def test_addition_sampler(binding):
    rng = np.random.default_rng(0)
    images, labels = rng.uniform(0, 1, (30, 4)), rng.integers(0, 10, 30)
    kwargs = {"batch_size": 8, "noise": 0.0, "seed": 3, "dtype": jnp.float64}
    sample = runs.addition_sampler(images, labels, binding=binding, **kwargs)
    x, c, y = sample(5)
    x2, c2, y2 = sample(5)
    np.testing.assert_array_equal(x, x2)
    np.testing.assert_array_equal(y, y2)
    if binding:
        assert x.shape == (8, 4) and c is not None and c.shape == (8, 4)
        pairs = (x, c)
    else:
        assert x.shape == (8, 8) and c is None
        pairs = (x[:, :4], x[:, 4:])
    # each image is a row of the split, and the label is the sum of their digits
    index = [
        [int(np.flatnonzero(np.all(images == np.asarray(row), axis=1))[0]) for row in p]
        for p in pairs
    ]
    np.testing.assert_array_equal(y, (labels[index[0]] + labels[index[1]]) % 10)


@pytest.mark.parametrize("seed", SEEDS)
def test_binding_puts_a_on_threshold_units_and_b_on_oscillators(seed, getkey):
    rng = np.random.default_rng(seed)
    a, b, b2 = (jnp.asarray(rng.uniform(0, 1, 6)) for _ in range(3))
    model = HopfieldKuramotoClassifier(6, 2, 3, 3, binding=True, key=getkey())
    threshold, oscillators = model.initial_state(a, b)
    np.testing.assert_array_equal(threshold, encode_hopfield(a, model.num_units))
    np.testing.assert_allclose(oscillators[:6, 0], 2 * b - 1, atol=1e-6)
    threshold2, oscillators2 = model.initial_state(a, b2)
    np.testing.assert_array_equal(threshold, threshold2)  # b only on oscillators
    assert not np.allclose(oscillators[:6], oscillators2[:6])
    # the scores depend on both images
    s = model(a[None], b[None])
    assert not np.allclose(s, model(a[None], b2[None]))
    assert not np.allclose(s, model(b2[None], b[None]))
    with pytest.raises(ValueError, match="context"):
        model.initial_state(a)
    plain = HopfieldKuramotoClassifier(6, 2, 3, 3, key=getkey())
    with pytest.raises(ValueError, match="context"):
        plain.initial_state(a, b)


# ---------------------------------------------------------------- CLI

DATA = ["--train-limit", "40", "--test-limit", "20", "--quiet", "--x64"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--lr-schedule", "cosine"], "--lr-schedule"),
        (["--encoding", "raw"], "--encoding"),
        (["--class-start", "same"], "--class-start"),
        (["--max-steps", "0"], "--max-steps"),
        (["--task", "sum"], "--task"),
        (["--model", "kuramoto", "--interaction", "relu"], "--graph-k"),
        (["--task", "addition", "--graph-k", "160", "--extra", "4"], "--graph-k"),
    ],
)
def test_classify_flag_errors(args, message, tmp_path, capsys):
    out = tmp_path / "out"
    try:
        code = main(["classify", *args, *DATA, "--out", str(out)])
    except SystemExit as exit:  # argparse refuses a value outside the choices
        code = exit.code
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not out.exists()


def test_toml_keys_of_the_new_settings(tmp_path, capsys):
    config = tmp_path / "run.toml"
    config.write_text('lr_schedule = "exponential"\nmax-steps = "many"\n')
    assert (
        main(["classify", "--config", str(config), "--out", str(tmp_path / "o")]) == 2
    )
    assert "max_steps" in capsys.readouterr().err


def test_classify_addition_run(tmp_path):
    out = tmp_path / "add"
    args = ["classify", "--task", "addition", *DATA, "--extra", "2", "--steps", "2"]
    args += ["--batch-size", "8", "--eval-every", "0", "--no-figures"]
    args += ["--lr-schedule", "exponential", "--max-steps", "300"]
    assert main([*args, "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["task"] == "addition" and metrics["test_samples"] == 1000
    assert metrics["num_units"] == 2 * 64 + 2 + 10
    config = metrics["config"]
    assert config["lr_schedule"] == "exponential" and config["max_steps"] == 300
    assert np.sum(metrics["confusion"]) == 1000
