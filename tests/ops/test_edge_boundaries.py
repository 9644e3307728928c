"""Which way imports point (docs/architecture.md): each part imports only the parts below it.

    contract   <- edge <- training <- export        edgescreen (the CLI root and operations) imports any part
    contract   <- collector (+ the light role packages edge.roles.<role>, never the device runtime)

The device runtime stays light: importing every `edge` module pulls in no torch, no workstation part and no
optional SDK (those are imported only inside their own backend or camera module).
"""

from __future__ import annotations

import ast
import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import collector
import contract
import edge

ROOT = Path(__file__).resolve().parents[2]
# Modules whose whole purpose is an optional SDK: imported by name only when a profile asks for them.
SDK_MODULES = {"edge.backends.tensorrt_backend", "edge.sources.picamera2_source"}
FORBIDDEN = ("torch", "collector", "export", "training", "tensorrt", "pycuda", "picamera2", "fastapi", "sqlalchemy")
PARTS = ("contract", "edge", "collector", "training", "export", "edgescreen")
# part -> the parts its source may import (TYPE_CHECKING-only imports of edgescreen.cli.Groups aside).
ALLOWED: dict[str, set[str]] = {
    "contract": set(),
    "edge": {"contract"},
    "collector": {"contract", "edge.roles"},
    "training": {"contract", "edge"},
    "export": {"contract", "edge", "training"},
    "edgescreen": {"contract", "edge", "collector", "training", "export"},
}
# What the collector may load at run time from edge: the role registry's light packages, nothing of the
# device runtime (perception, inference backends, camera, outbox, MQTT client). Role configs name a backend
# provider and band thresholds, hence the backend interface's settings and the perception result types.
COLLECTOR_MAY_LOAD = (
    "edge",
    "edge.roles",
    "edge.roles.common",
    "edge.perception",
    "edge.perception.types",
    "edge.backends",
    "edge.backends.base",
)


def _modules(package: object, skip: set[str] = frozenset()) -> list[str]:  # type: ignore[assignment]
    prefix = f"{package.__name__}."  # type: ignore[attr-defined]
    names = [m.name for m in pkgutil.walk_packages(package.__path__, prefix=prefix)]  # type: ignore[attr-defined]
    return sorted(n for n in names if n not in skip)


def _loaded_after_import(modules: list[str], prefixes: tuple[str, ...]) -> list[str]:
    script = (
        "import importlib, json, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {prefixes!r})))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120, check=True
    )
    loaded: list[str] = json.loads(result.stdout.strip().splitlines()[-1])
    return loaded


def test_edge_modules_import_nothing_heavy_or_optional() -> None:
    modules = _modules(edge, SDK_MODULES)
    assert "edge.assembly" in modules and "edge.frame_loop" in modules and "edge.perception.pipeline" in modules
    assert _loaded_after_import(modules, FORBIDDEN) == []


def test_contract_loads_no_other_part_and_no_inference_library() -> None:
    modules = _modules(contract)
    assert "contract.wire" in modules and "contract.roles" in modules
    heavy = ("collector", "export", "training", "edgescreen", "torch", "cv2", "onnxruntime", "onnx", "paho")
    assert _loaded_after_import(modules, heavy) == []


def test_collector_never_loads_the_device_runtime() -> None:
    modules = _modules(collector)
    loaded = _loaded_after_import(modules, ("edge", "cv2", "onnxruntime", "onnx", "torch", "export", "training"))
    runtime = [m for m in loaded if not (m in COLLECTOR_MAY_LOAD or _is_role_package(m))]
    assert runtime == []


def _is_role_package(name: str) -> bool:
    # edge.roles.<role>, .config and .message: a role's declarative half; never its analyzer or metrics.
    parts = name.split(".")
    return parts[:2] == ["edge", "roles"] and (len(parts) == 3 or parts[3:] in (["config"], ["message"]))


def _imports(path: Path) -> list[tuple[int, str]]:
    """Absolute module names imported by a file, outside `if TYPE_CHECKING:` blocks."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: list[tuple[int, str]] = []

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                continue
            if isinstance(child, ast.Import):
                found.extend((child.lineno, alias.name) for alias in child.names)
            elif isinstance(child, ast.ImportFrom) and child.module and child.level == 0:
                found.append((child.lineno, child.module))
            visit(child)

    visit(tree)
    return found


@pytest.mark.parametrize("part", PARTS)
def test_source_imports_point_only_down(part: str) -> None:
    offenders = []
    for path in sorted((ROOT / part).rglob("*.py")):
        for line, name in _imports(path):
            top = name.split(".")[0]
            if top not in PARTS or top == part:
                continue
            if not any(name == allowed or name.startswith(f"{allowed}.") for allowed in ALLOWED[part]):
                offenders.append(f"{path.relative_to(ROOT)}:{line}: imports {name}")
    assert offenders == []


def test_edge_source_never_names_workstation_packages() -> None:
    offenders = []
    for path in (ROOT / "edge").rglob("*.py"):
        for line, name in _imports(path):
            if name.split(".")[0] in {"torch", "collector", "export", "training"}:
                offenders.append(f"{path.relative_to(ROOT)}:{line}: {name}")
    assert offenders == []
