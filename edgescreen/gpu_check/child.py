"""One step in its own process: `python -m edgescreen.gpu_check.child MODULE:FUNCTION ARGS.json RESULT.json`.

Writes {"ok": true, "figures": {...}} or {"ok": false, "error": "Type: message"} to RESULT.json (the
traceback goes to the step's log), and exits 0 or 1.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from contract.errors import one_line

log = logging.getLogger("edgescreen.gpu_check.child")


def _write(path: Path, data: dict[str, Any]) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh, default=str)
    os.replace(tmp, path)


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print("usage: python -m edgescreen.gpu_check.child MODULE:FUNCTION ARGS.json RESULT.json", file=sys.stderr)
        return 2
    target, args_file, result_file = argv
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    result_path = Path(result_file)
    try:
        module_name, _, function_name = target.partition(":")
        function = getattr(importlib.import_module(module_name), function_name)
        args = json.loads(Path(args_file).read_text())
        figures = function(**args)
    except Exception as exc:  # any failure of the step is its result
        log.exception("step %s failed", target)
        _write(result_path, {"ok": False, "error": f"{type(exc).__name__}: {one_line(exc)}"})
        return 1
    _write(result_path, {"ok": True, "figures": figures if isinstance(figures, dict) else {"value": figures}})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
