"""`edgescreen models list`: the models in the store, with their hashes and whether the files are intact."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from edgescreen.cli import Groups


def _list(args: argparse.Namespace) -> int:
    from edge.model_store import ModelStore, ModelStoreError, default_model_dir

    store = ModelStore(Path(args.dir) if args.dir else default_model_dir())
    try:
        manifest = store.manifest
    except ModelStoreError as exc:
        print(f"edgescreen models list: error: {exc}", file=sys.stderr)
        return 1
    rows: list[dict[str, Any]] = []
    for name in store.names():
        entry = manifest.models[name]
        try:
            store.path(name)
            status = "ok"
        except ModelStoreError as exc:
            status = "missing" if "missing" in str(exc) else "corrupt"
        rows.append(
            {
                "name": name,
                "file": str(store.directory / entry.file),
                "sha256": entry.sha256,
                "status": status,
                "inputs": [spec.model_dump() for spec in entry.inputs],
                "outputs": [spec.model_dump() for spec in entry.outputs],
                "source": entry.source.path,
                "license": entry.license,
            }
        )
    if args.json:
        document = {"directory": str(store.directory), "source": manifest.source.model_dump(), "models": rows}
        print(json.dumps(document, indent=2))
    else:
        print(
            f"model store: {store.directory} ({manifest.source.package} {manifest.source.version}, {manifest.license})"
        )
        for row in rows:
            shapes = ", ".join(f"{s['name']}{s['shape']}" for s in row["inputs"])
            print(f"{row['name']:<28} {row['status']:<8} {row['sha256'][:12]}  in: {shapes}")
    return 0 if all(row["status"] == "ok" for row in rows) else 1


def register(groups: Groups) -> None:
    models = groups.group("models")
    parser = models.add_parser(
        "list",
        help="list the converted models in the store and check their files",
        description="List the models in the store with their sha256 and input shapes; exit 1 if one is missing or "
        "corrupt.",
    )
    parser.add_argument("--dir", metavar="D", help="model store (default: $EDGESCREEN_MODEL_DIR or ~/.cache/...)")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.set_defaults(func=_list)
