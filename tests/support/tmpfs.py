"""A small tmpfs mounted for one test, for a disk that really fills; the test is skipped where mounting is not
allowed (not root, or no `mount`)."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


@contextmanager
def mounted_tmpfs(mount: Path, size: str, no_root: str = "mounting a tmpfs needs root") -> Iterator[Path]:
    """A tmpfs of `size` (mount's syntax: "1m") at `mount`, unmounted on exit; `no_root` is the skip reason
    where this is not root."""
    mount.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip(no_root)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)
