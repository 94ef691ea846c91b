"""Every subcommand of ``onyx``: --help, bad arguments, a model with free dims, --json, a closed
pipe. None may end in a Python traceback: a failure is one line and exit 1, bad arguments exit 2.

Most cases call ``main`` in this process (an exception escaping it fails the test just as a
traceback would); a few run the real command in a subprocess, where a closed pipe is a real one.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from onyx.cli import COMMANDS, main

COMMAND_NAMES = sorted(COMMANDS)


@pytest.fixture(scope="module")
def free_dims(tmp_path_factory) -> str:
    """y = MatMul(x, w) + b with x: float[batch, -1, 8] (a named dim, an exporter's -1)."""
    folder = tmp_path_factory.mktemp("free_dims")
    rng = np.random.default_rng(0)
    w = helper.make_tensor("w", TensorProto.FLOAT, [8, 4], rng.standard_normal(32).tolist())
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["m"], name="mm"),
         helper.make_node("Relu", ["m"], ["y"], name="relu")],
        "free_dims",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", -1, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", None, 4])],
        [w],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    path = str(folder / "free_dims.onnx")
    onnx.save(model, path)
    return path


def _args(command: str, model: str, tmp: str) -> list[str]:
    """A working command line for ``command`` on ``model``."""
    extra = {
        "save-external": [os.path.join(tmp, "ext.onnx"), "--threshold", "16"],
        "convert-version": ["--opset", "19", "-o", os.path.join(tmp, "v19.onnx")],
        "shapes": ["-o", os.path.join(tmp, "typed.onnx")],
        "run": ["--repeat", "1"],
        "bench": ["-n", "2", "--warmup", "1"],
        "optimize": [os.path.join(tmp, "optimized.onnx"), "--check"],
        "batch": [
            os.path.join(tmp, "rows.npz"),
            os.path.join(tmp, "out.parquet"),
            "--workers",
            "1",
        ],
    }.get(command, [])
    if command == "batch":  # four rows of x: float[batch, -1, 8]
        np.savez(os.path.join(tmp, "rows.npz"), x=np.ones((4, 5, 8), np.float32))
    return [command, model, *extra]


# One wrong argument per option that takes a value, and a missing model for all.
BAD = {
    "info": [["--nope"]],
    "print": [["--max-elements", "-1"], ["--max-elements", "many"]],
    "save-external": [[], ["out.onnx", "--threshold", "-5"]],
    "run": [["--dim", "batch"], ["--dim", "batch=-2"], ["--shape", "x"], ["--shape", "x=1,b"],
            ["--seed", "x"], ["--repeat", "-1"], ["--compare", "tensorflow"]],
    "bench": [["-n", "0"], ["--runs", "-3"], ["--warmup", "x"], ["--dim", "=3"]],
    "check": [["--full=yes"]],
    "shapes": [["-o"]],
    "convert-version": [["-o", "x.onnx"], ["--opset", "0", "-o", "x.onnx"]],
    "batch": [["rows.npz"], ["rows.npz", "out.parquet", "--batch-size", "0"],
              ["rows.npz", "out.parquet", "--engine", "spark"],
              ["rows.npz", "out.parquet", "--runs", "0"]],
    "optimize": [[], ["out.onnx", "--level", "7"], ["out.onnx", "--target-opset", "0"]],
}  # fmt: skip


def _exit_code(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as e:  # argparse: --help (0) and usage errors (2)
        return e.code


def _no_traceback(text: str) -> None:
    assert "Traceback" not in text and "internal error" not in text, text


def test_every_command_is_in_the_matrix():
    assert sorted(BAD) == COMMAND_NAMES


@pytest.mark.parametrize("command", COMMAND_NAMES)
def test_help(command, capsys):
    assert _exit_code([command, "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: onyx {command}") and "MODEL" in out.upper()
    if "--json" in out:
        assert "JSON (--json)" in out  # the schema is documented where the option is


@pytest.mark.parametrize("command", COMMAND_NAMES)
def test_bad_arguments_are_usage_errors(command, capsys, free_dims):
    assert _exit_code([command]) == 2  # no model
    assert "usage:" in capsys.readouterr().err
    for extra in BAD[command]:
        assert _exit_code([command, free_dims, *extra]) == 2, extra
        err = capsys.readouterr().err
        assert "usage: onyx" in err and "error:" in err, (extra, err)
        _no_traceback(err)


@pytest.mark.parametrize("command", COMMAND_NAMES)
def test_missing_and_broken_models_fail_in_one_line(command, capsys, tmp_path):
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"\x08\x07\x12garbage")
    for model in (str(tmp_path / "missing.onnx"), str(broken)):
        assert _exit_code(_args(command, model, str(tmp_path))) == 1
        err = capsys.readouterr().err
        assert err.startswith(f"onyx {command}: ") and err.count("\n") == 1, err
        _no_traceback(err)


@pytest.mark.parametrize("command", COMMAND_NAMES)
def test_model_with_free_dims(command, capsys, tmp_path, free_dims):
    assert _exit_code(_args(command, free_dims, str(tmp_path))) == 0
    captured = capsys.readouterr()
    _no_traceback(captured.err)
    if command in ("run", "bench"):
        assert "batch=1" in captured.err and "x[1]=1" in captured.err  # the dims it chose
        assert "--dim NAME=VALUE" in captured.err


def test_free_dims_given_on_the_command_line(capsys, tmp_path, free_dims):
    argv = ["run", free_dims, "--dim", "batch=2", "--shape", "x=2,5,8", "--json"]
    assert _exit_code(argv) == 0
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert report["outputs"][0]["shape"] == [2, 5, 4] and report["chosen_dims"] == {}
    assert "free dims" not in captured.err
    assert _exit_code(["run", free_dims, "--dim", "batch=2", "--shape", "x=3,5,8"]) == 1
    assert "--dim batch=2" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["info", "check", "shapes", "run", "bench"])
def test_json(command, capsys, tmp_path, free_dims):
    assert _exit_code([*_args(command, free_dims, str(tmp_path)), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)  # stdout is one JSON document, nothing else
    assert report["model"] == free_dims


# --- the real command, in a process of its own ----------------------------------------------
def _onyx(*argv: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "onyx.cli", *argv], capture_output=True,
                          text=True, check=False, **kwargs)  # fmt: skip


def test_process_exit_codes_without_tracebacks(tmp_path, free_dims):
    bad = _onyx("bench", free_dims, "-n", "0")
    assert bad.returncode == 2 and "usage:" in bad.stderr
    missing = _onyx("run", str(tmp_path / "missing.onnx"))
    assert missing.returncode == 1 and missing.stderr.count("\n") == 1
    for result in (bad, missing):
        _no_traceback(result.stderr)


def test_closed_pipe_in_a_real_process(tmp_path):
    big = helper.make_graph(
        [helper.make_node("Identity", ["w"], ["y"])], "big", [],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [50_000])],
        [helper.make_tensor("w", TensorProto.FLOAT, [50_000], np.arange(50_000.0).tolist())],
    )  # fmt: skip
    path = str(tmp_path / "big.onnx")
    onnx.save(helper.make_model(big, opset_imports=[helper.make_opsetid("", 18)]), path)
    # more than a pipe holds (64 KB), so the writer meets the closed pipe mid-write
    process = subprocess.Popen([sys.executable, "-m", "onyx.cli", "print", "--full", path],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    assert process.stdout.read(100)  # like `| head -c 100`
    process.stdout.close()
    err = process.stderr.read().decode()
    assert process.wait(timeout=60) == 0
    assert err == "", err
