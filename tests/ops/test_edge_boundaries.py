"""The device runtime stays light: importing every `edge` module pulls in no torch, no workstation part
and no optional SDK (those are imported only inside their own backend or camera module)."""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import edge

ROOT = Path(__file__).resolve().parents[2]
# Modules whose whole purpose is an optional SDK: imported by name only when a profile asks for them.
SDK_MODULES = {"edge.backends.tensorrt_backend", "edge.sources.picamera2_source"}
FORBIDDEN = ("torch", "collector", "export", "training", "tensorrt", "pycuda", "picamera2", "fastapi", "sqlalchemy")


def _edge_modules() -> list[str]:
    names = [m.name for m in pkgutil.walk_packages(edge.__path__, prefix="edge.")]
    return sorted(n for n in names if n not in SDK_MODULES)


def test_edge_modules_import_nothing_heavy_or_optional() -> None:
    modules = _edge_modules()
    assert "edge.runtime" in modules and "edge.perception.pipeline" in modules
    script = (
        "import importlib, json, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {FORBIDDEN!r})))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120, check=True
    )
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []


def test_edge_source_never_names_workstation_packages() -> None:
    offenders = []
    for path in (ROOT / "edge").rglob("*.py"):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            stripped = line.strip()
            if stripped.startswith(("import ", "from ")) and stripped.split()[1].split(".")[0] in {
                "torch",
                "collector",
                "export",
                "training",
            }:
                offenders.append(f"{path.relative_to(ROOT)}:{number}: {stripped}")
    assert offenders == []
