"""Is there an NVIDIA GPU here, and what runs it: the same signs as scripts/gpu-check.sh, then CUDA itself.

No assumption about the CPU: a Jetson (aarch64, integrated GPU, JetPack) counts as much as an x86-64
workstation. A Jetson may have no `nvidia-smi` and no /dev/nvidia0; its sign is /etc/nv_tegra_release
(L4T) or an "nvidia,tegra" device tree.
"""

from __future__ import annotations

import importlib
import os
import platform
import shutil
import subprocess
from pathlib import Path
from typing import Any

TEGRA_RELEASE = Path(os.environ.get("EDGESCREEN_TEGRA_RELEASE", "/etc/nv_tegra_release"))  # as the script reads it
DEVICE_TREE = Path("/proc/device-tree/compatible")


def _nvidia_smi(*args: str, timeout: float = 20.0) -> list[str]:
    binary = shutil.which("nvidia-smi")
    if binary is None:
        return []
    try:
        out = subprocess.run([binary, *args], capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in out.stdout.splitlines() if line.strip()] if out.returncode == 0 else []


def jetson_release() -> str | None:
    """'R36 (release), REVISION: 4.3' from L4T, or None off a Jetson."""
    try:
        first = TEGRA_RELEASE.read_text(errors="replace").splitlines()[0]
    except (OSError, IndexError):
        try:
            return "Tegra" if b"nvidia,tegra" in DEVICE_TREE.read_bytes() else None
        except OSError:
            return None
    return first.lstrip("# ").split(", GCID")[0].strip() or "L4T"


def gpu_signs() -> list[str]:
    """What says an NVIDIA GPU is here (empty: none)."""
    signs = []
    listed = [line for line in _nvidia_smi("-L") if line.startswith("GPU ")]
    if listed:
        signs.append(f"nvidia-smi: {listed[0]}")
    if Path("/dev/nvidia0").exists():
        signs.append("/dev/nvidia0")
    jetson = jetson_release()
    if jetson:
        signs.append(f"Jetson ({jetson})")
    return signs


def cuda_usable() -> tuple[bool, str]:
    """(True, how) if torch or pycuda can open CUDA device 0; (False, why not) otherwise."""
    reasons = []
    try:
        import torch

        if torch.cuda.is_available():
            return True, f"torch {torch.__version__}: {torch.cuda.get_device_name(0)}"
        reasons.append(f"torch {torch.__version__} sees no CUDA device")
    except ImportError:
        reasons.append("torch is not installed")
    try:
        import pycuda.driver as cuda

        cuda.init()
        if cuda.Device.count() > 0:
            return True, f"pycuda: {cuda.Device(0).name()}"
        reasons.append("pycuda sees no CUDA device")
    except ImportError:
        reasons.append("pycuda is not installed")
    except Exception as exc:  # pycuda raises its own LogicError/RuntimeError without a driver
        reasons.append(f"pycuda cannot start CUDA ({exc})")
    return False, "; ".join(reasons)


def _version(module: str) -> str | None:
    try:
        return str(getattr(importlib.import_module(module), "__version__", "present"))
    except Exception:  # an SDK that is present but broken is reported as absent
        return None


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.split(":")[0].strip() in ("model name", "Model", "Hardware"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def describe() -> dict[str, Any]:
    """The step `environment`: the machine and the versions that run the check."""
    info: dict[str, Any] = {
        "signs": gpu_signs(),
        "arch": platform.machine(),
        "cpu": _cpu_name(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "jetson": jetson_release(),
        "tensorrt": _version("tensorrt"),
        "pycuda": _version("pycuda"),
        "onnxruntime": _version("onnxruntime"),
    }
    rows = _nvidia_smi("--query-gpu=name,memory.total,driver_version", "--format=csv,noheader,nounits")
    if rows:
        name, memory, driver = (part.strip() for part in rows[0].split(",")[:3])
        info.update(gpu=name, gpus=len(rows), driver=driver)
        try:
            info["gpu_memory_mb"] = float(memory)
        except ValueError:
            pass
    try:
        import torch

        info["torch"] = torch.__version__
        info["cuda"] = torch.version.cuda
        if torch.cuda.is_available():
            props = torch.cuda.get_device_properties(0)
            info.setdefault("gpu", props.name)
            info.setdefault("gpus", torch.cuda.device_count())
            info.setdefault("gpu_memory_mb", props.total_memory / 2**20)
            info["compute_capability"] = f"{props.major}.{props.minor}"
    except ImportError:
        info["torch"] = None
    usable, how = cuda_usable()
    info["cuda_usable"] = usable
    info["cuda_detail"] = how
    return info
