#!/usr/bin/env python3
"""The reference jsonnet implementation (PyPI's `jsonnet`, the C++ one) for
tests/render_jsonnet.rs: reads one request as JSON on stdin —
{"file", "cwd", "jpath", "ext_vars", "ext_codes", "tla_vars", "tla_codes"} —
evaluates the file and prints {"ok": VALUE} or {"error": MESSAGE}.
Exit 3 when the module is not installed."""
import json
import os
import sys

try:
    import _jsonnet
except ImportError:
    sys.stderr.write("the jsonnet module is not installed (pip install jsonnet)\n")
    sys.exit(3)

req = json.load(sys.stdin)
os.chdir(req["cwd"])
try:
    out = _jsonnet.evaluate_file(
        req["file"],
        jpathdir=req.get("jpath", []),
        ext_vars=req.get("ext_vars", {}),
        ext_codes=req.get("ext_codes", {}),
        tla_vars=req.get("tla_vars", {}),
        tla_codes=req.get("tla_codes", {}),
    )
    print(json.dumps({"ok": json.loads(out)}))
except RuntimeError as e:
    print(json.dumps({"error": str(e)}))
