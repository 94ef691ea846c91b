"""The onyx command, through main([...]) and once through the installed script."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import numpy as np
import onnx
import pytest

import onyx
import onyx.samples
from onyx.cli import main

MLP = onyx.samples.path()


def test_sample_is_small_and_valid():
    assert os.path.getsize(MLP) < 100_000
    onnx.checker.check_model(onnx.load(MLP), full_check=True)
    with pytest.raises(FileNotFoundError, match="mlp"):
        onyx.samples.path("nope")


def test_info(capsys):
    assert main(["info", MLP]) == 0
    out = capsys.readouterr().out
    for text in ("ir_version 10", "ai.onnx=21", "onyx.tools.make_sample", "x: float[N, 16]",
                 "probs: float[N, 10]", "parameters 1,930", "MatMul", "seed: 2024"):  # fmt: skip
        assert text in out, text


def test_run_random_inputs_and_output_dir(capsys, tmp_path):
    assert main(["run", MLP, "--output-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "probs: float32 [1, 10]" in out and "mean 0.1" in out
    probs = np.load(tmp_path / "probs.npy")
    assert probs.shape == (1, 10) and np.isclose(probs.sum(), 1.0)


def test_run_with_given_input(capsys, tmp_path):
    x = np.random.default_rng(3).standard_normal((4, 16)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    assert main(["run", MLP, "--input", f"x={tmp_path / 'x.npy'}", "-o", str(tmp_path)]) == 0
    assert "probs: float32 [4, 10]" in capsys.readouterr().out
    (want,) = onyx.InferenceSession(MLP).run(None, {"x": x})
    np.testing.assert_array_equal(np.load(tmp_path / "probs.npy"), want)


def test_bench_per_op(capsys):
    assert main(["bench", MLP, "--runs", "5", "--per-op"]) == 0
    captured = capsys.readouterr()
    assert "5 runs: p50" in captured.out and "p99" in captured.out
    assert "MatMul" in captured.out and "Softmax" in captured.out
    assert "5/5" in captured.err  # the progress bar


def test_save_external(capsys, tmp_path):
    out = tmp_path / "ext.onnx"
    assert main(["save-external", MLP, str(out), "--threshold", "100"]) == 0
    assert (tmp_path / "ext.onnx.data").exists()
    assert out.stat().st_size < os.path.getsize(MLP)
    model = onyx.load(out)
    assert model.graph.initializers["fc0.weight"].const_value.external is not None
    original = onyx.load(MLP)
    for name, value in original.graph.initializers.items():
        np.testing.assert_array_equal(model.graph.initializers[name].const_value.numpy(),
                                      value.const_value.numpy())  # fmt: skip


def test_print(capsys):
    pytest.importorskip("onyx.text")
    from onyx import text

    if not hasattr(text, "print_model"):
        pytest.skip("onyx.text has no print_model yet")
    assert main(["print", MLP]) == 0
    assert "MatMul" in capsys.readouterr().out


def test_error_is_one_line_with_exit_code_2(capsys, tmp_path):
    bad = tmp_path / "garbage.onnx"
    bad.write_bytes(b"\xff\x00 not a model" * 10)
    assert main(["info", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "FormatError" in err and "garbage.onnx" in err
    assert "Traceback" not in err and err.count("\n") == 1
    assert main(["run", str(tmp_path / "missing.onnx")]) == 2


def test_installed_script(tmp_path):
    script = shutil.which("onyx") or os.path.join(os.path.dirname(sys.executable), "onyx")
    if not os.path.exists(script):
        pytest.skip("the onyx console script is not installed")
    result = subprocess.run([script, "info", MLP], check=False, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "probs: float[N, 10]" in result.stdout
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"garbage")
    result = subprocess.run([script, "info", str(bad)], check=False, capture_output=True, text=True)
    assert result.returncode == 2 and "Traceback" not in result.stderr


def test_convert_version_command(tmp_path, capsys):
    out = tmp_path / "mlp18.onnx"
    assert main(["convert-version", "sample:mlp", "--opset", "18", "-o", str(out)]) == 0
    converted = onyx.load(out)
    assert converted.opset_imports[""] == 18
    onyx.check(converted)
    x = {"x": np.ones((1, 16), np.float32)}
    original = onyx.InferenceSession(onyx.samples.path()).run(None, x)[0]
    np.testing.assert_allclose(
        onyx.InferenceSession(converted).run(None, x)[0], original, rtol=1e-6
    )


def test_shapes_command(tmp_path, capsys):
    out = tmp_path / "typed.onnx"
    assert main(["shapes", "sample:mlp", "-o", str(out)]) == 0
    table = capsys.readouterr().out
    assert "probs" in table and "float" in table
    typed = onyx.load(out)
    assert typed.graph.value_info and all(v.type is not None for v in typed.graph.value_info)
