"""onyx's runtime settings against their shipped values, run by run in one process.

bench_revisions.py compares two revisions in processes of their own; on this project's shared
2-core machine their times drift by 10-20% between processes a minute apart, which hides
changes of a few percent (or turns them around). Here one session runs the model with the
setting as shipped and as given, alternating (ABBA), so both see the same machine, the same
process and the same warmed caches; the table gives each median and their ratio. After each
switch one run goes untimed: the convolutions' kept paths (conv.py's ``_Replay``) are forgotten
there and made again, as a session's first run makes them (before 2026-12-07 every timed run
here was such a first run, and the kept paths went unmeasured).
Both paths' data stay in the process, so the absolute times run higher than bench_models'
(more cache pressure); the ratio is what this measures.

A setting is a module-level name of a package under onyx.runtime read at call time (a
threshold, a switch), given as MODULE.NAME=VALUE with VALUE a Python literal, for example
``kernels.conv._PACKED_COLUMNS_DEPTH=1000000000`` (no im2col convolution by a packed weight);
several settings change together. With ``--build`` the settings are ones a session reads while
it is built (its plan's fusions and layouts, e.g. ``fusion._SQUEEZE_EXCITE_LAST=False``): two
sessions are built, one with the settings and one as shipped, and their runs alternate.

Run: python benchmarks/bench_switch.py kernels.conv._PACKED_COLUMNS_DEPTH=1000000000 [...]
     [--models ...] [--runs 200] [--build]
"""

from __future__ import annotations

import argparse
import ast
import importlib
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from bench_models import GROUPS, MODELS, feeds_for, model_path

import onyx
from onyx.runtime.kernels.conv import forget_replays


def parse_setting(text: str) -> tuple[object, str, object]:
    """(module, name, value) of MODULE.NAME=VALUE; SystemExit naming what is wrong."""
    target, sep, literal = text.partition("=")
    module_name, _, name = target.rpartition(".")
    if not sep or not module_name or not name:
        raise SystemExit(f"expected MODULE.NAME=VALUE, got {text!r}")
    try:
        module = importlib.import_module(f"onyx.runtime.{module_name}")
    except ImportError as e:
        raise SystemExit(f"no module onyx.runtime.{module_name}: {e}") from None
    if not hasattr(module, name):
        raise SystemExit(f"onyx.runtime.{module_name} has no {name}")
    try:
        value = ast.literal_eval(literal)
    except (ValueError, SyntaxError):
        raise SystemExit(f"{literal!r} is not a Python literal") from None
    return module, name, value


def compare(name: str, settings: list[tuple[object, str, object]], runs: int,
            build: bool = False) -> tuple[float, float]:  # fmt: skip
    """(median seconds as shipped, median seconds with the settings) of one session, or (with
    ``build``) of two, one built with the settings and one as shipped."""
    path = str(model_path(name))
    shipped = [(module, attribute, getattr(module, attribute)) for module, attribute, _ in settings]

    def choose(changed: bool) -> None:
        for module, attribute, value in settings if changed else shipped:
            setattr(module, attribute, value)
        forget_replays()  # (a convolution's kept path was chosen under the other settings)

    try:
        if build:
            choose(True)
            sessions = {True: onyx.InferenceSession(path)}
            choose(False)
            sessions[False] = onyx.InferenceSession(path)
        else:
            sessions = dict.fromkeys((False, True), onyx.InferenceSession(path))
        feeds = feeds_for(sessions[False])
        times: dict[bool, list[float]] = {False: [], True: []}
        current: list[bool | None] = [None]

        def switch(changed: bool) -> None:
            if build or current[0] is changed:
                return
            choose(changed)
            current[0] = changed
            # (untimed: after the switch each convolution takes its full path once and keeps
            # it, as every run after a session's first does)
            sessions[changed].run(None, feeds)

        for changed in (False, True, False, True):  # warm-up: each path once or twice
            switch(changed)
            sessions[changed].run(None, feeds)
        for i in range(runs):
            for changed in (False, True) if i % 2 else (True, False):
                switch(changed)
                start = time.perf_counter()
                sessions[changed].run(None, feeds)
                times[changed].append(time.perf_counter() - start)
    finally:
        choose(False)
    return statistics.median(times[False]), statistics.median(times[True])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("settings", nargs="+", help="MODULE.NAME=VALUE, MODULE under onyx.runtime")
    parser.add_argument("--models", nargs="*", default=MODELS)
    parser.add_argument("--runs", type=int, default=200, help="runs of each, alternating")
    parser.add_argument("--build", action="store_true",
                        help="settings read while a session is built: two sessions")  # fmt: skip
    args = parser.parse_args()
    settings = [parse_setting(text) for text in args.settings]
    names = [m for name in args.models for m in GROUPS.get(name, [name])]
    for module, attribute, value in settings:
        print(f"{attribute}: shipped {getattr(module, attribute)!r}, against {value!r}")
    print(f"medians of {args.runs} alternating runs each, default threads")
    print(f"{'model':<22}{'shipped ms':>12}{'setting ms':>12}{'setting/shipped':>17}")
    for name in names:
        shipped, changed = compare(name, settings, args.runs, args.build)
        print(f"{name:<22}{shipped * 1e3:>12.2f}{changed * 1e3:>12.2f}{changed / shipped:>16.3f}x",
              flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
