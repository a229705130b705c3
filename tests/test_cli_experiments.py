"""`hopkur classify`, `hopkur edit` and `hopkur demo`: outputs, JSON schema, resume and
bad input (tiny configurations)."""

import json

import pytest

from hopkur.cli import build_parser, main


DATA = ["--train-limit", "40", "--test-limit", "20", "--quiet", "--x64"]
PRETRAIN = [
    "--pretrain-extra",
    "2",
    "--pretrain-steps",
    "2",
    "--pretrain-batch-size",
    "8",
]
EDIT = ["--dim", "2", "--encoder-rank", "2", "--batch-size", "8"]


def _subparser(name):
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    return sub.choices[name]  # pyright: ignore


@pytest.mark.parametrize("name", ["classify", "edit", "demo"])
def test_help_documents_every_flag(name):
    parser = _subparser(name)
    text = parser.format_help()
    for action in parser._actions:
        if action.dest == "help":
            continue
        assert action.help, f"{action.option_strings} has no help"
        for flag in action.option_strings:
            assert flag in text


def test_classify_outputs_and_resume(tmp_path):
    out = tmp_path / "classify"
    args = ["classify", *DATA, "--extra", "2", "--steps", "3", "--batch-size", "8"]
    args += ["--eval-every", "0", "--out", str(out)]
    assert main(args) == 0
    names = {p.name for p in out.iterdir()}
    assert {
        "config.json",
        "checkpoint.eqx",
        "model.eqx",
        "metrics.json",
        "learning_curve.png",
        "confusion.png",
        "COMPLETE",
    } <= names
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["command"] == "classify" and metrics["model"] == "hopfield"
    assert (
        0 <= metrics["test_accuracy"] <= 1
        and len(metrics["learning_curve"]["loss"]) == 3
    )
    assert sum(map(sum, metrics["confusion"])) == 20
    # A finished run resumed: nothing left to train, same result.
    assert main([*args, "--resume"]) == 0
    again = json.loads((out / "metrics.json").read_text())
    assert (
        again["resumed"] is True and again["test_accuracy"] == metrics["test_accuracy"]
    )
    # Resuming with other settings is refused; a non-empty folder needs a flag.
    assert main([*args[:-2], "--steps", "4", "--out", str(out), "--resume"]) == 2
    assert main(args) == 2


def test_edit_and_demo(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HOPKUR_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "edit"
    args = ["edit", *DATA, *PRETRAIN, *EDIT, "--steps", "2", "--variant", "associative"]
    assert main([*args, "--task", "conflate", "--out", str(out)]) == 0
    names = {p.name for p in out.iterdir()}
    assert {
        "metrics.json",
        "pretrained.json",
        "model.eqx",
        "checkpoint.eqx",
        "confusion_before.png",
        "confusion_after.png",
        "gram.png",
        "learning_curve.png",
        "COMPLETE",
    } <= names
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["task"] == "conflate" and metrics["variant"] == "associative"
    assert metrics["pretrained_cached"] is False
    for part in ("baseline", "edited"):
        assert {"edited_task", "untouched", "context_one", "context_other"} <= set(
            metrics[part]
        )
    assert metrics["parameters"] > 0
    # C∘XXᵀ is low rank; the multiplicative default (W_s)∘C∘XXᵀ in general is not.
    assert metrics["is_low_rank"] is (metrics["mode"] == "additive")
    assert len(list((tmp_path / "cache").iterdir())) == 2

    demo = tmp_path / "demo"
    args = ["demo", *DATA, *PRETRAIN, *EDIT, "--steps", "2", "--associative-steps", "2"]
    assert main([*args, "--out", str(demo)]) == 0
    result = json.loads((demo / "metrics.json").read_text())
    assert result["command"] == "demo" and result["schema_version"] == 1
    assert result["pretrained"]["cached"] is True  # the edit run cached it
    assert [e["variant"] for e in result["edits"]] == ["non-associative", "associative"]
    for edit in result["edits"]:
        assert edit["task"] == "swap"
        assert {
            "baseline",
            "edited",
            "parameters",
            "full_update_parameters",
            "parameter_ratio",
            "train_seconds",
            "confusion_before",
            "confusion_after",
            "learning_curve",
        } <= set(edit)
    assert result["wall_time_s"] > 0 and "load_average" in result["environment"]
    for name in (
        "table.txt",
        "learning_curves.png",
        "confusion_before_non_associative.png",
        "confusion_after_associative.png",
        "gram_associative.png",
        "COMPLETE",
    ):
        assert (demo / name).exists(), name
    table = (demo / "table.txt").read_text()
    assert "swap non-associative" in table and table in capsys.readouterr().out


@pytest.mark.parametrize(
    "args, message",
    [
        (["classify", "--mnist-dir", "/nonexistent/mnist"], "nonexistent"),
        (["classify", "--graph-k", "3"], "--graph-k"),
        (["classify", "--data", "mnist"], "--mnist-dir"),
        (["edit", "--alpha", "0"], "--alpha"),
        (["edit", "--dim", "1"], "--dim"),
        (["edit", "--context", "image"], "--context"),
        (["demo", "--oscillator-k", "5"], "--oscillator-k"),
    ],
)
def test_bad_input(args, message, tmp_path, capsys):
    assert main([*args, "--out", str(tmp_path / "out"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_toml_config(tmp_path):
    config = tmp_path / "run.toml"
    config.write_text('model = "kuramoto"\ndim = 1\n')
    out = tmp_path / "out"
    assert main(["classify", "--config", str(config), "--out", str(out)]) == 2
