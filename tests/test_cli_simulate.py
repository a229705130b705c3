"""`hopkur simulate`: outputs, JSON metrics, TOML configuration and bad input."""

import json

import numpy as np
import pytest

import hopkur
from hopkur.cli import build_parser, main


TINY = ["--n", "8", "--batch", "3", "--t1", "2", "--saves", "11", "--quiet"]


def _subparser():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    return sub.choices["simulate"]  # pyright: ignore


def test_help_documents_every_flag(capsys):
    simulate = _subparser()
    text = simulate.format_help()
    for action in simulate._actions:
        if action.dest in ("help",):
            continue
        assert action.help, f"{action.option_strings} has no help"
        for flag in action.option_strings:
            assert flag in text
    with pytest.raises(SystemExit) as exit_info:
        main(["simulate", "--help"])
    assert exit_info.value.code == 0
    assert "--frequency-spread" in capsys.readouterr().out


def test_run_writes_metrics_and_figures(tmp_path):
    out = tmp_path / "run"
    args = ["simulate", *TINY, "--dim", "3", "--frequency-spread", "0.5"]
    assert main([*args, "--out", str(out)]) == 0
    names = {p.name for p in out.iterdir()}
    assert {
        "metrics.json",
        "timeseries.npz",
        "energy.png",
        "order_parameter.png",
        "oscillators.png",
        "COMPLETE",
    } <= names
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["command"] == "simulate" and metrics["batch"] == 3
    assert metrics["model"]["kind"] == "kuramoto" and metrics["model"]["dim"] == 3
    # Distinct natural frequencies: not a gradient system, and the report says so.
    assert metrics["model"]["is_gradient_system"] is False
    assert metrics["lyapunov"]["is_gradient_system"] is False
    assert isinstance(metrics["lyapunov"]["verdict"], str)
    assert len(metrics["final_energy"]) == 3
    assert all(0.0 <= r <= 1.0 for r in metrics["order_parameter_final"])
    assert metrics["max_norm_drift"] <= 1e-12
    assert metrics["solve_succeeded"] is True and metrics["wall_time_s"] > 0
    assert metrics["config"]["frequency_spread"] == 0.5
    series = np.load(out / "timeseries.npz")
    assert series["energies"].shape == (3, 11) and series["order_parameter"].shape == (
        3,
        11,
    )
    assert np.allclose(series["energies"][:, -1], metrics["final_energy"])
    # The same run again refuses to overwrite without --overwrite.
    assert main([*args, "--out", str(out)]) == 2
    assert main([*args, "--out", str(out), "--overwrite", "--no-figures"]) == 0
    assert not (out / "energy.png").exists() and (out / "COMPLETE").exists()


def test_toml_config_hopfield_with_patterns(tmp_path):
    config = tmp_path / "run.toml"
    config.write_text(
        'model = "hopfield"\nn = 16\nbatch = 2\nt1 = 3.0\nsaves = 7\npatterns = 2\n'
        'weight-scale = 4.0\nsolver = "heun"\ndt = 0.05\nquiet = true\n'
    )
    out = tmp_path / "hop"
    assert main(["simulate", "--config", str(config), "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["model"]["kind"] == "hopfield" and metrics["model"]["n"] == 16
    assert metrics["order_parameter_final"] is None
    assert metrics["lyapunov"]["is_gradient_system"] is True
    assert metrics["lyapunov"]["decreasing"] is True
    assert len(metrics["best_pattern_overlap"]) == 2
    assert (out / "energy.png").exists() and not (out / "oscillators.png").exists()


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--n", "1"], "--n must be at least 2"),
        (["--solver", "euler"], "give a fixed step with --dt"),
        (["--dt", "-0.1"], "--dt must be positive"),
        (["--coupling", "small-world", "--neighbours", "3"], "--neighbours"),
        (["--devices", "64"], "--devices 64"),
        (["--config", "/nonexistent/x.toml"], "no such file"),
        (["--noise", "-0.5", "--dt", "0.1"], "--noise must be at least 0"),
        (["--noise", "nan", "--dt", "0.1"], "--noise"),
        (["--noise", "0.5"], "give it with --dt"),
        (["--noise", "0.5", "--dt", "0.1", "--solver", "euler"], "Heun"),
        (["--model", "hopfield", "--phase-lag", "0.3"], "--phase-lag needs"),
        (["--model", "hopfield", "--frequencies", "gaussian"], "--frequencies needs"),
        (["--frequencies", "gaussian", "--width", "0"], "--width must be"),
        (["--frequencies", "uniform", "--width", "-1"], "--width must be"),
        (["--phase-lag", "inf"], "--phase-lag"),
        (
            ["--frequencies", "gaussian", "--frequency-spread", "0.5"],
            "give one of them",
        ),
    ],
)
def test_bad_flags_give_one_line_and_exit_2(tmp_path, capsys, extra, message):
    out = tmp_path / "bad"
    assert main(["simulate", *TINY, *extra, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err
    assert err.startswith("hopkur simulate: error:")
    assert not out.exists()


def test_bad_toml_keys_and_values(tmp_path, capsys):
    out = tmp_path / "bad"
    for text, message in [
        ("n_units = 3\n", "unknown key"),
        ('model = "spin"\n', "must be one of"),
        ("n = [1]\n", "must be an integer"),
        ("n = 8.7\n", "must be an integer"),
        ('x64 = "no"\n', "must be true/false"),
        ("no_retract = 1\n", "must be true/false"),
        ("t1 = inf\n", "finite"),
        ("model = \n", "not valid TOML"),
    ]:
        config = tmp_path / "c.toml"
        config.write_text(text)
        assert main(["simulate", "--config", str(config), "--out", str(out)]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and message in err
        assert not out.exists()


def test_unparsable_flag_exits_2(tmp_path):
    out = tmp_path / "bad"
    with pytest.raises(SystemExit) as exit_info:
        main(["simulate", "--n", "many", "--out", str(out)])
    assert exit_info.value.code == 2
    assert not out.exists()


def test_failure_leaves_no_complete_folder(tmp_path, monkeypatch, capsys):
    def broken(*args, **kwargs):
        raise RuntimeError("solver exploded")

    monkeypatch.setattr(hopkur, "simulate_batch", broken)
    out = tmp_path / "fail"
    assert main(["simulate", *TINY, "--out", str(out)]) == 1
    assert "exploded" in capsys.readouterr().err
    assert not out.exists()
    monkeypatch.setenv("HOPKUR_DEBUG", "1")
    with pytest.raises(RuntimeError, match="exploded"):
        main(["simulate", *TINY, "--out", str(out)])


def test_capacity_command(tmp_path, capsys):
    out = tmp_path / "cap"
    args = ["capacity", "--n", "60", "--loads", "0.05,0.4", "--trials", "1"]
    args += ["--cues", "8", "--quiet", "--out", str(out)]
    assert main(args) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["num_patterns"] == [3, 24]
    assert metrics["retrieved_fraction"][0] == 1.0
    assert metrics["retrieved_fraction"][1] < 0.5
    assert metrics["critical_load"] is not None
    assert (out / "capacity.png").exists() and (out / "COMPLETE").exists()
    bad = tmp_path / "bad"
    assert main(["capacity", "--loads", "0.1,x", "--out", str(bad)]) == 2
    assert "--loads" in capsys.readouterr().err and not bad.exists()


def _theory_run(tmp_path, capsys, *extra):
    out = tmp_path / "theory"
    args = ["simulate", "--batch", "2", "--saves", "21", "--no-figures", *extra]
    assert main([*args, "--out", str(out)]) == 0
    err = capsys.readouterr().err
    return json.loads((out / "metrics.json").read_text())["theory"], err


def test_noisy_identical_oscillators_report_von_mises_fisher(tmp_path, capsys):
    # D = 3, K = 2 K_c: the measured R (time average over the second half, both
    # trajectories) is within 4 sqrt((1 - r^2) / N) plus the Heun step bias of vMF.
    n, sigma, dt = 200, 1.0, 0.02
    k = 2 * hopkur.theory.noisy_sphere_critical_coupling(sigma, 3)
    theory, err = _theory_run(
        tmp_path,
        capsys,
        *("--n", str(n), "--dim", "3", "--strength", str(k), "--t1", "8"),
        *("--noise", str(sigma), "--dt", str(dt)),
    )
    expected = float(hopkur.theory.noisy_sphere_order_parameter(k, sigma, 3))
    assert theory["function"] == "hopkur.theory.noisy_sphere_order_parameter"
    assert theory["order_parameter"] == pytest.approx(expected)
    r = theory["measured_order_parameter"]
    tolerance = 4 * np.sqrt((1 - expected**2) / n) + 2 * sigma**2 * dt
    assert abs(r - expected) <= tolerance
    assert theory["deviation"] == pytest.approx(r - expected)
    assert "theory (von Mises-Fisher" in err and f"{expected:.4f}" in err


@pytest.mark.parametrize(
    "extra, function",
    [
        (["--frequencies", "lorentzian", "--phase-lag", "0.4"], "sakaguchi"),
        (["--frequencies", "gaussian"], "hopkur.theory.order_parameter"),
        (["--frequencies", "bimodal", "--separation", "0.2"], "order_parameter"),
    ],
)
def test_frequencies_report_their_theory(tmp_path, capsys, extra, function):
    # D = 2, mean-field, no noise: a theory applies and its value is the library's.
    theory, err = _theory_run(
        tmp_path,
        capsys,
        *("--n", "64", "--t1", "2", "--strength", "3", "--width", "0.5"),
        *extra,
    )
    assert function in theory["function"]
    assert 0 < theory["order_parameter"] < 1
    assert 0 <= theory["measured_order_parameter"] <= 1
    assert "theory (" in err


@pytest.mark.parametrize(
    "extra, reason",
    [
        (["--frequencies", "bimodal", "--separation", "2"], "unimodal"),
        (["--frequencies", "gaussian", "--noise", "0.3", "--dt", "0.1"], "noise"),
        (["--frequencies", "gaussian", "--phase-lag", "0.3"], "Lorentzian"),
        (["--coupling", "dense", "--noise", "0.3", "--dt", "0.1"], "mean-field"),
    ],
)
def test_no_theory_is_said(tmp_path, capsys, extra, reason):
    theory, err = _theory_run(
        tmp_path, capsys, *("--n", "16", "--t1", "1", "--width", "0.5"), *extra
    )
    assert theory["order_parameter"] is None and reason in theory["reason"]
    assert "no theory applies" in err
