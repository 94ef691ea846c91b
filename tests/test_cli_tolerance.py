"""`onyx run --compare ... --rtol/--atol`: exit 1 when an output differs beyond the bound."""

from __future__ import annotations

import json

import numpy as np
import pytest

import onyx
import onyx.samples
from onyx.cli import main

MLP = onyx.samples.path()


@pytest.fixture
def feed_and_ref(tmp_path):
    x = np.random.default_rng(3).standard_normal((2, 16)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    probs = onyx.InferenceSession(MLP).run(None, {"x": x})[0].astype(np.float64)
    planted = probs.copy()
    planted[0, 2] += 1e-3  # one element off by 1e-3 (relative: 1e-3 / planted[0, 2])
    np.savez(tmp_path / "ref.npz", probs=planted)
    return ["-i", f"x={tmp_path / 'x.npy'}", "--repeat", "0"], str(tmp_path / "ref.npz"), planted


def test_outputs_within_the_tolerance_exit_0(capsys, feed_and_ref):
    feed, ref, _ = feed_and_ref
    assert main(["run", MLP, *feed, "--compare", ref, "--atol", "2e-3", "--json"]) == 0
    compare = json.loads(capsys.readouterr().out)["compare"]
    assert compare["ok"] is True and compare["atol"] == 2e-3 and compare["rtol"] == 0.0
    assert compare["outputs"][0]["within_tolerance"] is True
    # a relative bound alone: the element is off by 1e-3 / ref relative
    assert main(["run", MLP, *feed, "--compare", ref, "--rtol", "1.0"]) == 0
    out = capsys.readouterr().out
    assert "probs: max abs diff" in out and out.rstrip().endswith("ok")


def test_outputs_beyond_the_tolerance_exit_1_naming_them(capsys, feed_and_ref):
    feed, ref, planted = feed_and_ref
    assert main(["run", MLP, *feed, "--compare", ref, "--atol", "5e-4"]) == 1
    captured = capsys.readouterr()
    assert "EXCEEDS" in captured.out
    assert "1 output(s) differ from" in captured.err and "--atol 0.0005: probs" in captured.err
    assert "Traceback" not in captured.err
    # the bound is atol + rtol * |ref|: an rtol just short of covering the element fails too
    rel = 1e-3 / planted[0, 2]
    assert main(["run", MLP, *feed, "--compare", ref, "--rtol", f"{rel * 0.9:.6g}", "--json"]) == 1
    compare = json.loads(capsys.readouterr().out)["compare"]
    assert compare["ok"] is False and compare["outputs"][0]["within_tolerance"] is False
    assert main(["run", MLP, *feed, "--compare", ref, "--rtol", f"{rel * 1.1:.6g}"]) == 0
    capsys.readouterr()
    # without a tolerance --compare only reports (exit 0), as before
    assert main(["run", MLP, *feed, "--compare", ref]) == 0
    assert "within_tolerance" not in capsys.readouterr().out


def test_a_missing_or_misshapen_output_is_beyond_any_tolerance(capsys, feed_and_ref, tmp_path):
    feed, _, planted = feed_and_ref
    np.savez(tmp_path / "short.npz", probs=planted[:1])
    np.savez(tmp_path / "none.npz", other=planted)
    for ref in ("short.npz", "none.npz"):
        assert main(["run", MLP, *feed, "--compare", str(tmp_path / ref), "--atol", "1"]) == 1
    capsys.readouterr()


def test_tolerance_arguments_are_validated(capsys):
    assert main(["run", MLP, "--atol", "1e-3", "--repeat", "0"]) == 2  # needs --compare
    assert "--rtol and --atol need --compare" in capsys.readouterr().err
    for bad in (["--rtol", "-1"], ["--atol", "x"], ["--atol", "nan"]):
        with pytest.raises(SystemExit) as e:
            main(["run", MLP, "--compare", "onnxruntime", *bad])
        assert e.value.code == 2
    assert "expected a" in capsys.readouterr().err
