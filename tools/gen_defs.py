"""Generate onyx/defs/schemas.json.gz: the facts of every operator schema, from the installed onnx.

    python tools/gen_defs.py            # writes onyx/defs/schemas.json.gz
    python tools/gen_defs.py --check    # exits 1 if the committed file differs

Only facts are copied (names, versions, arity, attribute kinds and defaults, type constraints);
no documentation text.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import sys

DOMAINS = ("", "ai.onnx.ml", "ai.onnx.preview", "ai.onnx.preview.training")
TARGET = os.path.join(os.path.dirname(__file__), "..", "onyx", "defs", "schemas.json.gz")
INFINITE = 2147483647


def _value(attr) -> object:
    """An attribute's default value as plain JSON (None when the schema gives no default)."""
    from onnx import helper, numpy_helper

    if attr.type == 0:  # UNDEFINED: no default
        return None
    v = helper.get_attribute_value(attr)
    if attr.type == 4:  # TENSOR
        arr = numpy_helper.to_array(v)
        return {"dims": list(v.dims), "dtype": v.data_type, "values": arr.reshape(-1).tolist()}
    if isinstance(v, bytes):
        return v.decode("utf-8")
    if isinstance(v, list):
        return [x.decode("utf-8") if isinstance(x, bytes) else x for x in v]
    return v


def _param(p) -> list:
    option = {0: "single", 1: "optional", 2: "variadic"}[int(p.option.value)]
    return [p.name, p.type_str, option, bool(p.is_homogeneous), int(p.min_arity)]


def collect() -> list[dict]:
    import onnx.defs

    out = []
    for s in onnx.defs.get_all_schemas_with_history():
        if s.domain not in DOMAINS:
            continue
        attrs = []
        for name in sorted(s.attributes):
            a = s.attributes[name]
            attrs.append([name, int(a.type.value), bool(a.required), _value(a.default_value)])
        out.append({
            "domain": s.domain,
            "name": s.name,
            "since_version": int(s.since_version),
            "deprecated": bool(s.deprecated),
            "inputs": [_param(p) for p in s.inputs],
            "outputs": [_param(p) for p in s.outputs],
            "attributes": attrs,
            "type_constraints": [[c.type_param_str, sorted(c.allowed_type_strs)]
                                 for c in s.type_constraints],
            "min_input": int(s.min_input),
            "max_input": int(s.max_input),
            "min_output": int(s.min_output),
            "max_output": int(s.max_output),
        })  # fmt: skip
    out.sort(key=lambda d: (d["domain"], d["name"], d["since_version"]))
    return out


def domain_versions() -> dict[str, list[int]]:
    """Domain -> [first, last] opset version the standard defines."""
    import onnx.defs

    ranges = onnx.defs.C.schema_version_map()
    return {d: list(ranges[d]) for d in DOMAINS if d in ranges}


def render() -> bytes:
    """The JSON text (one schema per line, keys in a fixed order) as bytes."""
    dump = lambda obj: json.dumps(obj, separators=(",", ":"), ensure_ascii=True)
    lines = [dump(d) for d in collect()]
    head = '{"domains":' + dump(domain_versions()) + ',\n"schemas":[\n'
    return (head + ",\n".join(lines) + "\n]}\n").encode()


def compress(data: bytes) -> bytes:
    return gzip.compress(data, compresslevel=9, mtime=0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    parser.add_argument("-o", "--output", default=TARGET)
    args = parser.parse_args(argv)
    data = render()
    if args.check:
        with gzip.open(args.output, "rb") as f:
            same = f.read() == data
        print("up to date" if same else f"{args.output} is stale: rerun tools/gen_defs.py")
        return 0 if same else 1
    with open(args.output, "wb") as f:
        f.write(compress(data))
    print(f"wrote {args.output}: {len(data)} bytes of JSON")
    return 0


if __name__ == "__main__":
    sys.exit(main())
