"""The `hopkur` command's bad-input, fault and concurrency suite: nothing lost, no
traceback, no silent wrong result.

Each case of a table runs the command in-process and checks the promise of
docs/cli/index.md: exit code 2 with one line on stderr starting with the command's
name, and nothing deleted or written that should not be. The few cases that need a
process of their own (Ctrl-C) start one.
"""

import json
import os
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from hopkur.cli import main
from hopkur.commands import _folder


TINY_SIM = ["--n", "8", "--batch", "2", "--t1", "1", "--saves", "3", "--quiet"]
TINY_CLASSIFY = ["--extra", "2", "--steps", "2", "--batch-size", "4", "--quiet"]
TINY_CLASSIFY += ["--train-limit", "20", "--test-limit", "10", "--eval-every", "0"]
TINY_CLASSIFY += ["--x64"]  # the tests run with jax_enable_x64


def run(argv, capsys):
    """`(exit code, stderr lines)` of `hopkur argv`."""
    try:
        code = main(argv)
    except SystemExit as e:  # argparse's own errors
        code = e.code
    err = capsys.readouterr().err.strip().splitlines()
    return code, err


def assert_one_line(code, err, fragment, *, expected_code=2):
    assert code == expected_code, err
    assert len(err) == 1, err
    assert err[0].startswith("hopkur"), err
    assert "Traceback" not in err[0]
    assert fragment in err[0], err


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` with its bytes."""
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def fake_run(folder: Path, command: str, files: dict[str, str | bytes]) -> Path:
    """A run folder as hopkur leaves it (marker, files, COMPLETE)."""
    folder.mkdir(parents=True)
    (folder / _folder.MARKER).write_text(json.dumps({"command": command}))
    for name, data in files.items():
        target = folder / name
        if isinstance(data, bytes):
            target.write_bytes(data)
        else:
            target.write_text(data)
    return folder


# ----------------------------------------------------------------------------------
# Data loss: --overwrite deletes only hopkur runs, after every check.


def test_empty_or_current_folder_is_never_a_run(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "thesis.tex").write_text("years of work")
    sub = tmp_path / "sub"
    sub.mkdir()
    before = snapshot(tmp_path)
    for out in ["", ".", str(tmp_path), "..", str(Path.home())]:
        code, err = run(["simulate", *TINY_SIM, "--out", out, "--overwrite"], capsys)
        assert_one_line(code, err, "--out")
    monkeypatch.chdir(sub)
    code, err = run(["simulate", *TINY_SIM, "--out", "..", "--overwrite"], capsys)
    assert_one_line(code, err, "parent of the current folder")
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("command", ["simulate", "classify", "capacity"])
def test_overwrite_refuses_a_folder_hopkur_did_not_create(tmp_path, capsys, command):
    user = tmp_path / "userdir"
    user.mkdir()
    (user / "thesis.tex").write_text("years of work")
    (user / "COMPLETE").write_text("looks like a run, but no marker")
    before = snapshot(user)
    code, err = run([command, "--out", str(user), "--overwrite", "--quiet"], capsys)
    assert_one_line(code, err, "did not write")
    assert snapshot(user) == before


def _truncated_mnist(folder: Path) -> Path:
    folder.mkdir()
    (folder / "train-images-idx3-ubyte").write_bytes(b"\x00\x00\x08\x03\x00")
    return folder


@pytest.mark.parametrize("command", ["classify", "edit", "demo"])
def test_overwrite_checks_data_before_deleting(tmp_path, capsys, command):
    run_dir = fake_run(
        tmp_path / "run", command, {"metrics.json": "{}", "COMPLETE": "1\n"}
    )
    before = snapshot(run_dir)
    mnist = _truncated_mnist(tmp_path / "mnist")
    argv = [command, "--mnist-dir", str(mnist), "--out", str(run_dir), "--overwrite"]
    code, err = run([*argv, "--quiet"], capsys)
    assert_one_line(code, err, str(mnist))
    assert snapshot(run_dir) == before


def test_refused_resume_leaves_the_run_as_it_was(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["classify", *TINY_CLASSIFY, "--out", str(out)]) == 0
    before = snapshot(out)
    code, err = run(
        ["classify", *TINY_CLASSIFY, "--lr", "0.5", "--resume", "--out", str(out)],
        capsys,
    )
    assert_one_line(code, err, "--lr 0.5 (the run has 0.001)")
    assert snapshot(out) == before and (out / "COMPLETE").exists()
    # A resume with no flags takes every setting from the run (and refuses nothing).
    code, err = run(["classify", "--resume", "--quiet", "--out", str(out)], capsys)
    assert code == 0, err
    config = json.loads((out / "config.json").read_text())
    assert config["steps"] == 2 and config["extra"] == 2


def _sudoku_run(folder: Path, **changes) -> Path:
    from hopkur.experiments.sudoku_run import DEFAULTS

    config = {**DEFAULTS, "channels": 8, "time_budget": 77.0, "max_iters": 5}
    config.update(changes)
    return fake_run(
        folder,
        "sudoku train",
        {
            "config.json": json.dumps(config),
            "checkpoint.eqx": b"not a checkpoint",
            "opt_state.eqx": b"not a state",
            "state.json": json.dumps({"iteration": 3, "elapsed": 1.0}),
        },
    )


def test_sudoku_resume_refuses_conflicting_flags(tmp_path, capsys):
    out = _sudoku_run(tmp_path / "run")
    before = snapshot(out)
    argv = ["sudoku", "train", "--resume", "--out", str(out), "--quiet"]
    code, err = run([*argv, "--channels", "16", "--lr", "0.5"], capsys)
    assert_one_line(code, err, "--channels 16 (the run has 8)")
    assert "--lr 0.5" in err[0]
    assert snapshot(out) == before


def test_sudoku_resume_restores_settings_left_off(tmp_path):
    from hopkur.cli import build_parser
    from hopkur.commands._folder import RunFolder
    from hopkur.commands.sudoku import _train_settings

    out = _sudoku_run(tmp_path / "run")
    args = build_parser().parse_args(["sudoku", "train", "--resume", "--out", str(out)])
    folder = RunFolder(args.out, "sudoku train", resume=True)
    settings = _train_settings(args, folder)
    assert settings.time_budget == 77.0 and settings.max_iters == 5
    assert settings.channels == 8
    # Free settings may be changed on resume: a longer budget.
    args = build_parser().parse_args(
        ["sudoku", "train", "--resume", "--out", str(out), "--time-budget", "99"]
    )
    assert _train_settings(args, folder).time_budget == 99.0


@pytest.mark.parametrize(
    "name, data, fragment",
    [
        ("checkpoint.eqx", b"garbage", "corrupt"),
        ("config.json", b"{not json", "corrupt"),
        ("config.json", json.dumps({"channels": "48"}).encode(), "'channels'"),
        ("state.json", b"", "corrupt"),
    ],
)
def test_sudoku_resume_of_corrupt_files(tmp_path, capsys, name, data, fragment):
    out = _sudoku_run(tmp_path / "run")
    (out / name).write_bytes(data)
    before = snapshot(out)
    code, err = run(["sudoku", "train", "--resume", "--out", str(out)], capsys)
    assert_one_line(code, err, fragment)
    assert snapshot(out) == before


def test_sudoku_checkpoint_of_wrong_types(tmp_path, capsys):
    out = _sudoku_run(tmp_path / "run", channels="48")
    code, err = run(
        ["sudoku", "eval", "--checkpoint", str(out), "--out", str(tmp_path / "e")],
        capsys,
    )
    assert_one_line(code, err, "'channels' must be of type int")


def test_classify_resume_of_a_corrupt_checkpoint(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["classify", *TINY_CLASSIFY, "--out", str(out)]) == 0
    (out / "checkpoint.eqx").write_bytes(b"garbage")
    code, err = run(["classify", "--resume", "--quiet", "--out", str(out)], capsys)
    assert_one_line(code, err, "corrupt")
    (out / "config.json").write_bytes(b"\xff\xfe not utf-8")
    code, err = run(["classify", "--resume", "--quiet", "--out", str(out)], capsys)
    assert_one_line(code, err, "corrupt")


def test_interrupted_run_keeps_what_it_wrote(tmp_path, capsys, monkeypatch):
    from hopkur.experiments import sudoku as S

    def interrupted(config, folder, **kwargs):
        (Path(folder) / "metrics.jsonl").write_text('{"iteration": 1}\n')
        raise KeyboardInterrupt

    monkeypatch.setattr(S, "train", interrupted)
    out = tmp_path / "run"
    code, err = run(["sudoku", "train", "--out", str(out), "--quiet"], capsys)
    assert code == 130 and err == ["hopkur sudoku: interrupted"]
    assert (out / "metrics.jsonl").read_text() == '{"iteration": 1}\n'
    assert not (out / "COMPLETE").exists()


def test_metrics_history_is_cut_to_the_resumed_checkpoint(tmp_path):
    from hopkur.experiments.sudoku_run import read_history

    path = tmp_path / "metrics.jsonl"
    lines = [2800, 4049, 2435, 3120]
    path.write_text("".join(json.dumps({"iteration": i}) + "\n" for i in lines) + "{")
    kept = [entry["iteration"] for entry, _ in read_history(path, 3000)]
    assert kept == [2800]
    kept = [entry["iteration"] for entry, _ in read_history(path, 5000)]
    assert kept == [2800, 4049]


def test_a_second_run_on_a_folder_in_use_fails_at_once(tmp_path, capsys):
    from hopkur.commands._folder import RunFolder

    out = tmp_path / "run"
    first = RunFolder(out, "classify", resume=False).open()
    try:
        start = time.perf_counter()
        for extra in (["--overwrite"], ["--resume"]):
            code, err = run(
                ["classify", *TINY_CLASSIFY, *extra, "--out", str(out)], capsys
            )
            assert_one_line(code, err, "in use by another hopkur run")
        assert time.perf_counter() - start < 30
    finally:
        first.close()
    assert not (out / "COMPLETE").exists()


# ----------------------------------------------------------------------------------
# Silent wrong results become errors.


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["sudoku", "train", "--lr", "nan"], "--lr must be a finite number"),
        (["sudoku", "train", "--time-budget", "nan"], "--time-budget"),
        (["sudoku", "train", "--dim", "0"], "--dim must be at least 2"),
        (["sudoku", "train", "--dim", "-4"], "--dim must be at least 2"),
        (["sudoku", "train", "--channels", "10", "--dim", "4"], "multiple of --dim"),
        (["simulate", "--t1", "inf"], "--t1 must be a finite number"),
        (["simulate", "--t1", "nan"], "--t1 must be a finite number"),
        (["simulate", "--dt", "nan", "--solver", "euler"], "--dt"),
        (["simulate", "--rtol", "0"], "--rtol must be positive"),
        (["edit", "--pretrain-noise", "-1"], "--pretrain-noise must be at least 0"),
        (["classify", "--noise", "-1"], "--noise must be at least 0"),
        (["classify", "--noise", "nan"], "--noise must be a finite number"),
        (["classify", "--noise", "inf"], "--noise must be a finite number"),
        (["classify", "--lr", "inf"], "--lr must be a finite number"),
        (["classify", "--lr", "1e30"], "--lr must be at most 10"),
        (["classify", "--seed", "-1"], "--seed must be at least 0"),
        (["classify", "--average", "1"], "--average must be below 1"),
        (["edit", "--alpha", "nan"], "--alpha must be a finite number"),
        (["edit", "--alpha", "inf"], "--alpha must be a finite number"),
        (["edit", "--alpha", "0"], "--alpha must be non-zero"),
    ],
)
def test_bad_numbers(tmp_path, capsys, argv, fragment):
    out = tmp_path / "out"
    code, err = run([*argv, "--out", str(out), "--quiet"], capsys)
    assert_one_line(code, err, fragment)
    assert not out.exists()


@pytest.mark.parametrize(
    "argv",
    [
        ["simulate", "--seed", str(10**20)],
        ["simulate", "--max-steps", str(10**12)],
        ["simulate", "--n", str(10**12)],
        ["simulate", "--saves", str(10**15)],
        ["simulate", "--batch", str(10**18)],
        ["classify", "--steps", str(10**13)],
        ["sudoku", "train", "--max-iters", str(10**20)],
        ["sudoku", "eval", "--n", str(10**12)],
        ["sudoku", "eval", "--blocks", "1," + str(10**9)],
        ["capacity", "--loads", "nan"],
        ["capacity", "--loads", "inf"],
        ["capacity", "--loads", "1e12"],
        ["capacity", "--loads", "0.1,-1"],
        ["capacity", "--n", str(10**15)],
    ],
)
def test_huge_and_non_finite_values(tmp_path, capsys, argv):
    out = tmp_path / "out"
    code, err = run([*argv, "--out", str(out), "--quiet"], capsys)
    flag = next(a for a in argv if a.startswith("--"))
    assert_one_line(code, err, flag)
    assert not out.exists()


@pytest.mark.parametrize(
    "command, text, fragment",
    [
        ("simulate", 'x64 = "no"\n', "'x64' must be true/false"),
        ("simulate", "n = 8.7\n", "'n' must be an integer"),
        ("simulate", "no_retract = 1\n", "'no_retract' must be true/false"),
        ("simulate", "t1 = nan\n", "--t1 must be a finite number"),
        ("simulate", "seed = 100000000000000000000\n", "--seed must be at most"),
        ("simulate", "quiet = 1\n", "'quiet' must be true/false"),
        ("classify", 'steps = "3"\n', "'steps' must be an integer"),
        ("classify", "lr = true\n", "'lr' must be a number"),
        ("classify", "mnist_dir = 3\n", "'mnist_dir' must be a string"),
        ("sudoku train", 'channels = "48"\n', "'channels' must be an integer"),
        ("capacity", "loads = [0.1]\n", "'loads' must be a string"),
    ],
)
def test_toml_values_are_never_coerced(tmp_path, capsys, command, text, fragment):
    config = tmp_path / "c.toml"
    config.write_text(text)
    out = tmp_path / "out"
    argv = [*command.split(), "--config", str(config), "--out", str(out)]
    code, err = run(argv, capsys)
    assert_one_line(code, err, fragment)
    assert not out.exists()


def test_simulate_blow_up_is_reported_and_metrics_stay_valid_json(tmp_path, capsys):
    out = tmp_path / "blow"
    argv = ["simulate", "--model", "hopfield", "--lagrangian", "identity"]
    argv += ["--weight-scale", "1e6", "--solver", "euler", "--dt", "0.5", "--t1", "60"]
    argv += ["--n", "8", "--batch", "2", "--saves", "5", "--max-steps", "200"]
    code, err = run([*argv, "--no-figures", "--quiet", "--out", str(out)], capsys)
    assert_one_line(code, err, "non-finite", expected_code=1)

    def refuse(name):
        raise ValueError(f"bare {name} in metrics.json")

    metrics = json.loads((out / "metrics.json").read_text(), parse_constant=refuse)
    assert metrics["lyapunov"]["finite"] is False
    assert metrics["lyapunov"]["verdict"] == "non-finite"
    assert not (out / "COMPLETE").exists()


def test_training_stops_when_parameters_become_non_finite():
    import equinox as eqx
    import jax.numpy as jnp
    import optax

    from hopkur.experiments import train

    class Model(eqx.Module):
        p: jnp.ndarray

    def loss(model, batch):
        # Finite loss, infinite gradient at 0: adam's update is then NaN.
        return jnp.sum(jnp.sqrt(jnp.abs(model.p)))

    with pytest.raises(FloatingPointError, match="parameters became non-finite"):
        train(
            Model(jnp.zeros(3)),
            loss,
            lambda step: None,
            optimiser=optax.adam(1e-2),
            steps=3,
            progress=False,
        )


# ----------------------------------------------------------------------------------
# Files and the operating system: one line, exit code 2.


def _mnist(folder: Path, shapes: dict[str, tuple], labels=None) -> Path:
    folder.mkdir()
    for prefix, shape in shapes.items():
        images = np.zeros(shape, np.uint8)
        n = shape[0]
        lab = np.arange(n) % 10 if labels is None else np.resize(labels, n)
        for kind, array, code in (("images", images, 3), ("labels", lab, 1)):
            array = np.asarray(array, np.uint8)
            header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim)
            header += struct.pack(f">{array.ndim}I", *array.shape)
            path = folder / f"{prefix}-{kind}-idx{code}-ubyte"
            path.write_bytes(header + array.tobytes())
    return folder


def test_os_and_file_failures(tmp_path, capsys, monkeypatch):
    afile = tmp_path / "afile"
    afile.write_text("x")
    cases = [
        (["simulate", "--out", str(afile / "sub")], "is a file"),
        (["simulate", "--out", str(afile)], "not a folder"),
        (["simulate", "--out", str(tmp_path / ("x" * 300))], "too long"),
        (["simulate", "--config", str(tmp_path)], "is a folder"),
        (["classify", "--cache-dir", "x", "--out", "y"], "unrecognized arguments"),
        (["edit", "--cache-dir", str(afile), "--train-limit", "20"], "--cache-dir"),
    ]
    binary = tmp_path / "binary.toml"
    binary.write_bytes(b"\xff\xfe\x00 = 1")
    cases.append((["simulate", "--config", str(binary)], "not UTF-8"))
    mismatch = _mnist(tmp_path / "m1", {"train": (20, 4, 4), "t10k": (10, 5, 5)})
    cases.append((["classify", "--mnist-dir", str(mismatch)], "same size"))
    empty = _mnist(tmp_path / "m2", {"train": (20, 0, 0), "t10k": (10, 0, 0)})
    cases.append((["classify", "--mnist-dir", str(empty)], "no pixels"))
    no_one = _mnist(
        tmp_path / "m3", {"train": (20, 4, 4), "t10k": (10, 4, 4)}, labels=[0, 2, 3]
    )
    cases.append(
        (
            ["edit", "--variant", "associative", "--mnist-dir", str(no_one)],
            "images of a 1",
        )
    )
    cases.append((["demo", "--mnist-dir", str(no_one)], "images of a 1"))
    cases.append((["classify", "--graph-k", "1000"], "--graph-k must be smaller"))
    cases.append((["edit", "--graph-k", "500"], "--graph-k must be smaller"))
    for argv, fragment in cases:
        if "--out" not in argv:
            argv = [*argv, "--out", str(tmp_path / "out")]
        code, err = run([*argv, "--quiet"], capsys)
        assert_one_line(code, err, fragment)
    assert not (tmp_path / "out").exists()


def test_a_failing_write_is_one_line(tmp_path, capsys, monkeypatch):
    import errno

    import hopkur
    from hopkur.experiments import _io

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", "out/metrics.json")

    with monkeypatch.context() as patch:
        patch.setattr(_io, "atomic_write_bytes", full)
        patch.setattr(_folder, "atomic_write_bytes", full)
        out = tmp_path / "out"
        code, err = run(["simulate", *TINY_SIM, "--out", str(out)], capsys)
        assert_one_line(code, err, "No space left on device")
    # An operating-system error anywhere in a run: one line, the traceback only
    # with HOPKUR_DEBUG=1.
    monkeypatch.setattr(hopkur, "simulate_batch", full)
    code, err = run(["simulate", *TINY_SIM, "--out", str(tmp_path / "o1")], capsys)
    assert_one_line(code, err, "No space left on device: 'out/metrics.json'")
    monkeypatch.setenv("HOPKUR_DEBUG", "1")
    with pytest.raises(OSError, match="No space left"):
        main(["simulate", *TINY_SIM, "--out", str(tmp_path / "o2")])


def test_ctrl_c_ends_a_long_solve_within_seconds(tmp_path):
    out = tmp_path / "long"
    argv = ["simulate", "--model", "kuramoto", "--coupling", "dense", "--n", "400"]
    argv += ["--dim", "3", "--batch", "64", "--t1", "1e6", "--max-steps", "100000000"]
    argv += ["--saves", "2", "--quiet", "--no-figures", "--out", str(out)]
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    code = [sys.executable, "-c", "import sys; from hopkur.cli import main; main()"]
    with subprocess.Popen([*code, *argv], stderr=subprocess.PIPE, env=env) as process:
        try:
            deadline = time.time() + 120
            while not (out / _folder.MARKER).exists():
                assert process.poll() is None
                assert time.time() < deadline
                time.sleep(0.2)
            time.sleep(3.0)  # inside the compiled solve by now
            assert process.poll() is None
            sent = time.time()
            process.send_signal(signal.SIGINT)
            _, stderr = process.communicate(timeout=60)
            elapsed = time.time() - sent
        finally:
            if process.poll() is None:
                process.kill()
    assert process.returncode == 130, stderr
    assert elapsed < 15, elapsed
    assert "interrupted" in stderr.decode()
    assert (out / _folder.MARKER).exists() and not (out / "COMPLETE").exists()


def test_a_solve_out_of_steps_is_one_clear_line(tmp_path, capsys):
    # A budget of 2 solver steps cannot reach t = 1: diffrax raises inside the
    # compiled solve; the user sees what happened and which flag to raise, not the
    # header of an EquinoxRuntimeError.
    out = tmp_path / "run"
    argv = ["classify", "--model", "kuramoto", *TINY_CLASSIFY, "--max-steps", "2"]
    code = main([*argv, "--no-figures", "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1
    assert "--max-steps" in err[0] and "internal error" not in err[0]
    assert not (out / "COMPLETE").exists()
