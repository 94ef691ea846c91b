"""The onyx command, through main([...]) and once through the installed script."""

from __future__ import annotations

import json
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


def test_bench_per_op_counts_only_the_timed_runs(capsys):
    assert main(["bench", MLP, "--runs", "5", "--warmup", "2", "--per-op"]) == 0
    captured = capsys.readouterr()
    assert "5 runs: p50" in captured.out and "p99" in captured.out
    assert "warm-up 2 runs: first" in captured.out
    assert "MatMul" in captured.out and "Softmax" in captured.out
    assert "5/5" not in captured.err  # no progress bar: stderr is not a terminal here


def test_bench_json_per_op_is_within_the_timed_runs(capsys):
    assert main(["bench", MLP, "-n", "4", "--warmup", "3", "--per-op", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert len(report["warmup_ms"]) == 3 and report["runs"] == 4
    assert report["latency_ms"]["min"] <= report["latency_ms"]["p50"] <= report["latency_ms"]["max"]
    per_run = sum(op["ms_per_run"] for op in report["per_op"])
    assert 0 < per_run <= report["latency_ms"]["mean"] * 1.01
    assert {op["op_type"] for op in report["per_op"]} >= {"MatMul", "Softmax"}


def test_bench_profile_writes_a_chrome_trace(capsys, tmp_path):
    out = tmp_path / "trace.json"
    assert main(["bench", MLP, "-n", "3", "--warmup", "1", "--profile", str(out)]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    assert os.listdir(tmp_path) == ["trace.json"]  # renamed into place, nothing left beside
    events = json.loads(out.read_text())
    assert [e["ts"] for e in events] == sorted(e["ts"] for e in events)
    runs = [e for e in events if e["name"] == "model_run"]
    assert len(runs) == 4  # the warm-up run and the timed ones
    for run in runs:
        nodes = [e for e in events if e["cat"] == "Node" and e["args"]["run"] == run["args"]["run"]]
        assert nodes and sum(n["dur"] for n in nodes) <= run["dur"] + 1e-3


def test_bench_usage_errors_exit_2(capsys):
    for argv in (["-n", "0"], ["--runs", "x"], ["--warmup", "-1"], ["--dim", "N"],
                 ["--shape", "x=1,a"], ["--seed", "-3"]):  # fmt: skip
        with pytest.raises(SystemExit) as e:
            main(["bench", MLP, *argv])
        assert e.value.code == 2, argv
        assert "usage: onyx bench" in capsys.readouterr().err


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


def test_error_is_one_line_with_exit_code_1(capsys, tmp_path):
    bad = tmp_path / "garbage.onnx"
    bad.write_bytes(b"\xff\x00 not a model" * 10)
    assert main(["info", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "FormatError" in err and "garbage.onnx" in err
    assert "Traceback" not in err and err.count("\n") == 1
    assert main(["run", str(tmp_path / "missing.onnx")]) == 1
    assert main(["info", "sample:nope"]) == 1
    assert "no sample model 'nope'" in capsys.readouterr().err


def test_json_failure_is_a_json_error_too(capsys, tmp_path):
    assert main(["info", str(tmp_path / "missing.onnx"), "--json"]) == 1
    captured = capsys.readouterr()
    assert json.loads(captured.out)["error"]["type"] == "FormatError"
    assert captured.err.startswith("onyx info: FormatError: ")


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
    assert result.returncode == 1 and "Traceback" not in result.stderr


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


# --- run: inputs, seeds, dims, comparisons ----------------------------------------------------
def _x(rows: int = 2) -> np.ndarray:
    return np.random.default_rng(7).standard_normal((rows, 16)).astype(np.float32)


def _probs(x: np.ndarray) -> np.ndarray:
    return onyx.InferenceSession(MLP).run(None, {"x": x})[0]


@pytest.mark.parametrize("kind", ["npy", "npz", "npz-named", "pb", "pb-named"])
def test_run_reads_npy_npz_and_tensorproto_inputs(kind, capsys, tmp_path):
    x = _x(3)
    if kind == "npy":
        np.save(tmp_path / "x.npy", x)
        spec = str(tmp_path / "x.npy")  # named after the file
    elif kind.startswith("npz"):
        np.savez(tmp_path / "in.npz", x=x)
        spec = ("x=" if kind == "npz-named" else "") + str(tmp_path / "in.npz")
    else:
        tensor = onnx.numpy_helper.from_array(x, name="x" if kind == "pb" else "other")
        (tmp_path / "input_0.pb").write_bytes(tensor.SerializeToString())
        spec = ("x=" if kind == "pb-named" else "") + str(tmp_path / "input_0.pb")
    assert main(["run", MLP, "-i", spec, "-o", str(tmp_path), "--repeat", "0"]) == 0
    assert "probs: float32 [3, 10]" in capsys.readouterr().out
    np.testing.assert_array_equal(np.load(tmp_path / "probs.npy"), _probs(x))


def test_run_input_errors_name_the_file(capsys, tmp_path):
    (tmp_path / "x.txt").write_text("1 2 3")
    (tmp_path / "bad.npy").write_bytes(b"not numpy")
    np.savez(tmp_path / "two.npz", a=_x(), b=_x())
    unnamed = onnx.numpy_helper.from_array(_x())
    (tmp_path / "unnamed.pb").write_bytes(unnamed.SerializeToString())
    for spec, text in ((f"x={tmp_path / 'x.txt'}", "expected a .npy, .npz or .pb"),
                       (f"x={tmp_path / 'bad.npy'}", "cannot read"),
                       (f"x={tmp_path / 'two.npz'}", "has no array 'x'"),
                       (str(tmp_path / "unnamed.pb"), "has no name"),
                       (f"x={tmp_path / 'nope.npy'}", "no such file")):  # fmt: skip
        assert main(["run", MLP, "-i", spec]) == 1, spec
        err = capsys.readouterr().err
        assert "FeedError" in err and text in err and err.count("\n") == 1, err
    x64 = _x().astype(np.float64)
    np.save(tmp_path / "x64.npy", x64)
    assert main(["run", MLP, "-i", f"x={tmp_path / 'x64.npy'}"]) == 1
    assert "expects tensor(float)" in capsys.readouterr().err


def test_run_seed_decides_the_random_inputs(capsys):
    def mean_of(seed: str) -> float:
        assert main(["run", MLP, "--seed", seed, "--repeat", "0", "--json"]) == 0
        return json.loads(capsys.readouterr().out)["inputs"][0]["mean"]

    assert mean_of("1") == mean_of("1") != mean_of("2")


def test_run_reports_first_and_steady_times(capsys):
    assert main(["run", MLP, "--repeat", "2"]) == 0
    out = capsys.readouterr().out
    assert "first run " in out and "steady " in out and "median of 2 more runs" in out
    assert main(["run", MLP, "--repeat", "2", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["steady_runs"] == 2 and report["steady_ms"] > 0 and report["first_run_ms"] > 0


def test_run_says_which_free_dims_it_chose(capsys):
    assert main(["run", MLP, "--repeat", "0"]) == 0
    captured = capsys.readouterr()
    assert "free dims without a value were set to 1: N=1" in captured.err
    assert "--dim NAME=VALUE" in captured.err and "probs: float32 [1, 10]" in captured.out


def test_run_shape_sets_the_random_input_and_its_symbols(capsys):
    assert main(["run", MLP, "--shape", "x=5,16", "--repeat", "0"]) == 0
    captured = capsys.readouterr()
    assert "probs: float32 [5, 10]" in captured.out and "free dims" not in captured.err
    for argv, text in ((["--shape", "x=5,16,1"], "rank 2"),
                       (["--shape", "y=5,16"], "no input 'y'"),
                       (["--shape", "x=5,16", "--dim", "N=4"], "N=5, but --dim N=4")):  # fmt: skip
        assert main(["run", MLP, *argv]) == 1
        err = capsys.readouterr().err
        assert "FeedError" in err and text in err, err


@pytest.mark.skipif(
    not hasattr(onyx.SessionOptions, "add_free_dimension_override_by_name"),
    reason="SessionOptions.add_free_dimension_override_by_name is not there yet",
)
def test_run_dim_sets_a_symbolic_dim(capsys):
    assert main(["run", MLP, "--dim", "N=3", "--repeat", "0"]) == 0
    captured = capsys.readouterr()
    assert "probs: float32 [3, 10]" in captured.out and "free dims" not in captured.err
    assert main(["run", MLP, "--dim", "Q=3", "--repeat", "0"]) == 0
    assert "no input has a dim named Q" in capsys.readouterr().err


def test_run_compare_with_onnxruntime_and_with_a_file(capsys, tmp_path):
    x = _x()
    np.save(tmp_path / "x.npy", x)
    feed = ["-i", f"x={tmp_path / 'x.npy'}", "--repeat", "0", "--json"]
    assert main(["run", MLP, *feed, "--compare", "onnxruntime"]) == 0
    (entry,) = json.loads(capsys.readouterr().out)["compare"]["outputs"]
    assert entry["name"] == "probs" and entry["max_abs_diff"] < 1e-6
    expected = _probs(x).astype(np.float64)
    planted = expected.copy()
    planted[1, 3] += 0.25  # a reference that differs in one element
    np.savez(tmp_path / "ref.npz", probs=planted)
    assert main(["run", MLP, *feed, "--compare", str(tmp_path / "ref.npz")]) == 0
    (entry,) = json.loads(capsys.readouterr().out)["compare"]["outputs"]
    assert entry["status"] == "different"
    assert entry["max_abs_diff"] == pytest.approx(0.25, rel=1e-5)
    assert entry["max_rel_diff"] == pytest.approx(0.25 / planted[1, 3], rel=1e-5)
    np.savez(tmp_path / "other.npz", probs=planted[:1])
    assert main(["run", MLP, *feed[:-1], "--compare", str(tmp_path / "other.npz")]) == 0
    assert "probs: shape [2, 10] vs [1, 10]" in capsys.readouterr().out


def test_compare_without_onnxruntime_is_a_clear_error(capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import fails
    assert main(["run", MLP, "--compare", "onnxruntime"]) == 1
    assert "onnxruntime is not installed (pip install onnxruntime)" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["run", MLP, "--compare", "tensorflow"])
    assert e.value.code == 2


def test_failing_node_in_nested_subgraphs_has_a_readable_path(capsys, tmp_path):
    from onyx.text import parse_model

    model = parse_model("""<ir_version: 8, opset_import: ["" : 18]>
    nested (bool c, float[N, 3] x) => (float[?] y) {
      [If_1] y = If (c) <then_branch = then1 () => (float[?] a) {
          [If_4] a = If (c) <else_branch = e4 () => (float[?] b2) { b2 = Identity (x) },
                             then_branch = t4 () => (float[?] b) { [MatMul_9] b = MatMul (x, x) }>
      }, else_branch = else1 () => (float[?] a2) { a2 = Identity (x) }>
    }""")
    onyx.save(model, tmp_path / "nested.onnx")
    np.save(tmp_path / "c.npy", np.array(True))
    argv = [
        "run",
        str(tmp_path / "nested.onnx"),
        "-i",
        f"c={tmp_path / 'c.npy'}",
        "--shape",
        "x=2,3",
    ]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "ExecutionError: node 'MatMul_9' (MatMul) in If_1.then_branch > If_4.then_branch" in err


# --- info, check, shapes, print -------------------------------------------------------------
def _constants_and_subgraphs(tmp_path) -> str:
    from onyx.text import parse_model

    model = parse_model("""<ir_version: 8, opset_import: ["" : 18]>
    g (bool c, float[4] x) => (float[4] y) <float[4] w = {1, 2, 3, 4}> {
      k = Constant <value = float[2, 4] {1, 2, 3, 4, 5, 6, 7, 8}> ()
      s = Constant <value_float = 2.0> ()
      y = If (c) <then_branch = t () => (float[4] a) { a = Add (x, w) },
                  else_branch = e () => (float[4] b) { b = Mul (x, w) }>
    }""")
    path = str(tmp_path / "consts.onnx")
    onyx.save(model, path)
    return path


def test_info_counts_constants_and_subgraph_nodes(capsys, tmp_path):
    path = _constants_and_subgraphs(tmp_path)
    assert main(["info", path]) == 0
    out = capsys.readouterr().out
    assert "parameters 13 in 1 initializers and 2 Constant nodes" in out
    assert "nodes      5 (2 of them in subgraphs)" in out
    assert main(["info", path, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["parameters"] == {"count": 13, "bytes": 56, "initializers": 1, "constants": 2}
    assert report["nodes"] == {"total": 5, "main_graph": 3, "in_subgraphs": 2, "functions": 0}
    assert report["inputs"] == [{"name": "c", "type": "tensor(bool)", "shape": []},
                                {"name": "x", "type": "tensor(float)", "shape": [4]}]  # fmt: skip


def test_info_json_of_the_sample(capsys):
    assert main(["info", MLP, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["inputs"] == [{"name": "x", "type": "tensor(float)", "shape": ["N", 16]}]
    assert report["parameters"]["count"] == 1930 and report["op_types"]["MatMul"] == 3
    assert report["opsets"] == {"ai.onnx": 21} and report["metadata"]["seed"] == "2024"


def test_check_and_shapes_json(capsys, tmp_path):
    assert main(["check", MLP, "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"model": MLP, "ok": True, "full": False,
                                                   "errors": [], "notes": []}  # fmt: skip
    broken = onnx.load(MLP)
    broken.graph.node[0].op_type = "Frobnicate"
    onnx.save(broken, tmp_path / "broken.onnx")
    assert main(["check", str(tmp_path / "broken.onnx"), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert not report["ok"] and "Frobnicate" in report["errors"][0]
    assert main(["shapes", MLP, "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)["values"]}
    assert rows["probs"]["shape"] == ["N", 10] and rows["probs"]["type"] == "tensor(float)"
    assert rows["fc0.weight"]["producer"] == "initializer" and rows["x"]["producer"] == "input"


def test_print_abbreviates_unless_full(capsys):
    assert main(["print", MLP]) == 0
    short = capsys.readouterr().out
    assert "... 512 elements}" in short
    assert main(["print", MLP, "--max-elements", "1024"]) == 0
    assert "elements}" not in capsys.readouterr().out
    assert main(["print", MLP, "--full"]) == 0
    full = capsys.readouterr().out
    from onyx.text import parse_model

    again = parse_model(full)
    np.testing.assert_array_equal(
        again.graph.initializers["fc0.weight"].const_value.numpy(),
        onyx.load(MLP).graph.initializers["fc0.weight"].const_value.numpy(),
    )


class _ClosedPipe:
    """A stdout whose reader has gone away."""

    def write(self, text: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")

    def flush(self) -> None:
        raise BrokenPipeError(32, "Broken pipe")

    def fileno(self) -> int:
        raise OSError("no file descriptor here")  # so the test never touches the real fd 1


@pytest.mark.parametrize("argv", [["print"], ["info"], ["shapes"], ["info", "--json"],
                                  ["run", "--repeat", "0"]])  # fmt: skip
def test_closed_pipe_ends_quietly(argv, capsys, monkeypatch):
    monkeypatch.setattr(sys, "stdout", _ClosedPipe())
    assert main([argv[0], MLP, *argv[1:]]) == 0
    monkeypatch.undo()
    assert "Traceback" not in capsys.readouterr().err
