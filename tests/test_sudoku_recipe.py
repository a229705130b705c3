"""The published-recipe options of the Sudoku training (issue 19): the loss over all
cells at the last iteration, attention over all cells, a moving average of the
weights."""

import json

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

from hopkur import AttentionCoupling
from hopkur.data.sudoku import sudoku_dataset
from hopkur.experiments import sudoku as S, sudoku_run
from hopkur.experiments.sudoku_model import SudokuAKOrN, SudokuTransformer


TINY = {"channels": 8, "dim": 4, "steps": 1, "blocks": 3, "heads": 2}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    return sudoku_dataset("test", 6, seed=0, cache_dir=cache)


# Compiled once for every seed (the models share their structure).
_loss = eqx.filter_jit(S._loss)


@eqx.filter_jit
def _nll(model, puzzles, solutions, keys):
    # Per board, iteration and cell: -log p(solution digit), written out directly.
    logits = jax.vmap(lambda p, k: model(p, key=k)[0])(puzzles, keys)
    logp = jax.nn.log_softmax(logits, axis=-1)
    onehot = jax.nn.one_hot(solutions - 1, 9)
    return -jnp.sum(logp * onehot[:, None], axis=-1)  # (b, L, 81)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_losses_are_the_documented_cross_entropies(data, seed):
    puzzles = jnp.asarray(data[0], jnp.int32)
    solutions = jnp.asarray(data[1], jnp.int32)
    model = sudoku_run.build_model(TINY, key=jr.key(seed))
    keys = jr.split(jr.key(seed + 10), puzzles.shape[0])
    nll = _nll(model, puzzles, solutions, keys)
    blanks = np.asarray(puzzles == 0)
    per_iteration = [
        float(np.sum(np.asarray(nll[:, i])[blanks]) / blanks.sum())
        for i in range(TINY["blocks"])
    ]
    deep, last = _loss(model, puzzles, solutions, keys, "blanks-iterations")
    assert float(deep) == pytest.approx(np.mean(per_iteration), rel=1e-5)
    assert float(last) == pytest.approx(per_iteration[-1], rel=1e-5)
    every_cell, last2 = _loss(model, puzzles, solutions, keys, "all-last")
    # All 81 cells (givens too) after the last iteration only.
    assert float(every_cell) == pytest.approx(float(jnp.mean(nll[:, -1])), rel=1e-5)
    assert float(last2) == pytest.approx(per_iteration[-1], rel=1e-5)
    assert float(every_cell) != pytest.approx(float(deep), rel=1e-3)


def _attention(model: SudokuAKOrN) -> AttentionCoupling:
    coupling = model.layer.coupling
    assert isinstance(coupling, AttentionCoupling)
    return coupling


def _mask(model):
    if isinstance(model, SudokuTransformer):
        return model.mask
    return _attention(model).mask


def test_attention_all_cells_or_peers():
    for config, masked in [
        ({}, True),
        ({"attention": "peers"}, True),
        ({"attention": "all"}, False),
        # Configurations written before the `attention` key:
        ({"structured": True}, True),
        ({"structured": False}, False),
    ]:
        for kind in ("akorn", "transformer"):
            model = sudoku_run.build_model(
                {**TINY, "model": kind, **config}, key=jr.key(0)
            )
            mask = _mask(model)
            assert (mask is not None) == masked, (config, kind)
    with pytest.raises(ValueError, match="attention 'peers' or 'all'"):
        sudoku_run.build_model({**TINY, "attention": "rows"}, key=jr.key(0))


def test_older_configs_are_renamed_where_they_are_read():
    # A run written before the `attention` key: every reader of config.json
    # (load_model, --resume) sees `attention`, so a resumed run rewrites its
    # config.json with the key that matches its checkpoint.
    for structured, attention in [(True, "peers"), (False, "all")]:
        cfg = sudoku_run.check_config({**TINY, "structured": structured}, "run")
        assert cfg["attention"] == attention and "structured" not in cfg
    assert sudoku_run.check_config({"attention": "all"}, "run") == {"attention": "all"}
    with pytest.raises(
        sudoku_run.RunStateError, match="'structured' must be of type bool"
    ):
        sudoku_run.check_config({"structured": "no"}, "run")


def test_all_cell_attention_uses_positions(data):
    # Without a mask, attention tells cells apart only by the positional embedding:
    # with it zeroed and the same digit everywhere, permuting the cells permutes the
    # coupling's output.
    model = sudoku_run.build_model({**TINY, "attention": "all"}, key=jr.key(3))
    assert isinstance(model, SudokuAKOrN)
    coupling = _attention(model)
    x = jr.normal(jr.key(4), (81, TINY["channels"]))
    perm = np.random.default_rng(0).permutation(81)
    out = coupling(x)
    assert not np.allclose(np.asarray(coupling(x[perm])), np.asarray(out[perm]))
    flat = eqx.tree_at(
        lambda c: c.position, coupling, jnp.zeros_like(coupling.position)
    )
    np.testing.assert_allclose(
        np.asarray(flat(x[perm])), np.asarray(flat(x)[perm]), rtol=1e-5, atol=1e-6
    )


def test_ema_update_and_decay_schedule():
    a = {"w": jnp.array([1.0, 2.0]), "n": 3}
    m = {"w": jnp.array([3.0, -2.0]), "n": 3}
    out = S._ema_update(a, m, jnp.asarray(0.75, jnp.float32))
    np.testing.assert_allclose(np.asarray(out["w"]), [1.5, 1.0])
    assert out["n"] == 3
    assert S.ema_decay(0.999, 0) == pytest.approx(0.1)
    assert S.ema_decay(0.999, 90) == pytest.approx(0.91)
    assert S.ema_decay(0.999, 10**6) == 0.999


def test_training_with_ema_and_all_cell_loss_resumes(data, tmp_path, monkeypatch):
    with jax.numpy_dtype_promotion("standard"):
        monkeypatch.setattr(
            S, "sudoku_dataset", lambda split, n, **kw: (data[0][:n], data[1][:n])
        )
        config = {
            **TINY,
            "coupling": "relational",
            "batch": 3,
            "train_size": 6,
            "eval_size": 3,
            "time_budget": 1e9,
            "max_iters": 6,
            "warmup": 1,
            "lr": 1e-2,
            "eval_every": 1e9,
            "ema": 0.9,
            "loss": "all-last",
        }
        S.train(config, tmp_path, progress=False, log=lambda s: None)
        average, cfg = sudoku_run.load_model(tmp_path)
        trained, _ = sudoku_run.load_model(tmp_path, sudoku_run.TRAIN_MODEL)
        assert cfg["ema"] == 0.9 and cfg["loss"] == "all-last"
        leaves = lambda t: jax.tree_util.tree_leaves(
            eqx.filter(t, eqx.is_inexact_array)
        )
        gaps = [
            float(jnp.max(jnp.abs(x - y)))
            for x, y in zip(leaves(average), leaves(trained))
        ]
        assert max(gaps) > 1e-6  # the checkpoint is the average, not the last weights
        model, _, state, avg = sudoku_run.load_resume_state(tmp_path)
        assert state["iteration"] == 6 and avg is not None
        S.train(
            {"max_iters": 8}, tmp_path, resume=True, progress=False, log=lambda s: None
        )
        assert json.loads((tmp_path / "state.json").read_text())["iteration"] == 8
        # Without the trained weights' file, the run cannot be resumed.
        (tmp_path / sudoku_run.TRAIN_MODEL).unlink()
        with pytest.raises(sudoku_run.RunStateError, match="train_model.eqx"):
            sudoku_run.load_resume_state(tmp_path)


def test_train_refuses_unknown_loss_and_ema(tmp_path):
    with pytest.raises(ValueError, match="loss must be one of"):
        S.train(
            {**TINY, "loss": "blanks"}, tmp_path, progress=False, log=lambda s: None
        )
    with pytest.raises(ValueError, match="ema must be in"):
        S.train({**TINY, "ema": 1.0}, tmp_path, progress=False, log=lambda s: None)
