"""Atomic writes: a file is its old or its new complete version, and a failed write
leaves no temporary file behind."""

import json

import pytest

from hopkur.experiments import _io


def test_atomic_write_replaces_whole_file(tmp_path):
    path = tmp_path / "sub" / "metrics.json"
    _io.atomic_write_json(path, {"a": 1})
    _io.atomic_write_json(path, {"b": [1, 2]})
    assert json.loads(path.read_text()) == {"b": [1, 2]}
    assert [p.name for p in path.parent.iterdir()] == ["metrics.json"]


def test_failed_write_keeps_the_old_file(tmp_path):
    path = tmp_path / "state.json"
    _io.atomic_write_bytes(path, b"old")

    class Boom:  # fails inside the write, after the temporary file exists
        def __buffer__(self, flags):
            raise OSError("disk full")

    with pytest.raises((OSError, TypeError)):
        _io.atomic_write_bytes(path, Boom())  # type: ignore[arg-type]
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]
