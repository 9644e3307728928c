"""Engine cache keys, stale detection, shape profiles and builder settings.

TensorRT is not installed here, so the builder runs against a stand-in `tensorrt` module that records
what it was told (flags, workspace, profiles, DLA, timing cache). The real build is tested on a GPU in
test_tensorrt_gpu.py.
"""

from __future__ import annotations

import json
import logging
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from contract.hashing import sha256_file
from edge.backends.engine_cache import EngineKey, engine_path, lookup
from edge.backends.tensorrt_build import (
    EngineBuildError,
    build_engine,
    onnx_inputs,
    shape_profiles,
)
from edgescreen.cli import main


def _conv_model(path: Path, bias: float = 0.0, qdq: bool = False, batch: str | int = "N") -> Path:
    w = numpy_helper.from_array(np.ones((4, 3, 3, 3), np.float32), "w")
    b = numpy_helper.from_array(np.full(4, bias, np.float32), "b")
    nodes = []
    x = "x"
    if qdq:
        inits = [
            numpy_helper.from_array(np.array(0.02, np.float32), "s"),
            numpy_helper.from_array(np.array(0, np.int8), "z"),
        ]
        nodes += [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["xq"])]
        nodes += [helper.make_node("DequantizeLinear", ["xq", "s", "z"], ["xd"])]
        x = "xd"
    else:
        inits = []
    nodes.append(helper.make_node("Conv", [x, "w", "b"], ["y"], pads=[1, 1, 1, 1]))
    graph = helper.make_graph(
        nodes,
        "conv",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 4, 8, 8])],
        [w, b, *inits],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


class FakeTensorRT:
    """Just enough of the TensorRT 10 Python API for the builder, recording every call."""

    def __init__(self, version: str = "10.3.0", dla_cores: int = 0, dla_ok: tuple[str, ...] = ()) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.dla_cores = dla_cores
        self.dla_ok = dla_ok

    def module(self, version: str = "10.3.0", progress: bool = True) -> types.ModuleType:
        rec = self.calls
        fake = self
        mod = types.ModuleType("tensorrt")
        mod.__version__ = version  # type: ignore[attr-defined]

        class Logger:
            WARNING = 2

            def __init__(self, level: int) -> None:
                pass

        class Layer:
            def __init__(self, name: str) -> None:
                self.name = name

        class Network:
            def __init__(self) -> None:
                self.layers = [Layer("conv1"), Layer("resize"), Layer("sigmoid")]
                self.num_layers = 3

            def get_layer(self, i: int) -> Layer:
                return self.layers[i]

        class Parser:
            num_errors = 0

            def __init__(self, network: Network, logger: Logger) -> None:
                pass

            def parse(self, data: bytes) -> bool:
                onnx.load_from_string(data)
                rec.append(("parse", len(data)))
                return True

        class TimingCache:
            def __init__(self, data: bytes) -> None:
                self.data = data

            def serialize(self) -> bytes:
                return self.data + b"+"

        class Profile:
            def set_shape(self, name: str, lo: tuple[int, ...], opt: tuple[int, ...], hi: tuple[int, ...]) -> None:
                rec.append(("profile", (name, lo, opt, hi)))

        class Config:
            def __init__(self) -> None:
                self.cache: TimingCache | None = None
                self.progress_monitor: Any = None

            def set_memory_pool_limit(self, pool: str, size: int) -> None:
                rec.append(("pool", (pool, size)))

            def set_flag(self, flag: str) -> None:
                rec.append(("flag", flag))

            def add_optimization_profile(self, profile: Profile) -> None:
                rec.append(("add_profile", None))

            def create_timing_cache(self, data: bytes) -> TimingCache:
                rec.append(("timing_cache_in", data))
                return TimingCache(data)

            def set_timing_cache(self, cache: TimingCache, ignore_mismatch: bool) -> None:
                self.cache = cache

            def get_timing_cache(self) -> TimingCache:
                assert self.cache is not None
                return self.cache

            def can_run_on_DLA(self, layer: Layer) -> bool:  # noqa: N802  # TensorRT's name
                return layer.name in fake.dla_ok

            def __setattr__(self, name: str, value: Any) -> None:
                if name in ("default_device_type", "DLA_core"):
                    rec.append((name, value))
                object.__setattr__(self, name, value)

        class Builder:
            num_DLA_cores = fake.dla_cores  # noqa: N815  # TensorRT's name

            def __init__(self, logger: Logger) -> None:
                pass

            def create_network(self, flags: int) -> Network:
                rec.append(("network_flags", flags))
                return Network()

            def create_builder_config(self) -> Config:
                return Config()

            def create_optimization_profile(self) -> Profile:
                return Profile()

            def build_serialized_network(self, network: Network, config: Config) -> bytes:
                if config.progress_monitor is not None:
                    config.progress_monitor.phase_start("Building", None, 2)
                    config.progress_monitor.step_complete("Building", 0)
                    config.progress_monitor.phase_finish("Building")
                rec.append(("build", None))
                return b"ENGINE-" + str(mod.__version__).encode()

        class IProgressMonitor:
            def __init__(self) -> None:
                pass

        mod.Logger = Logger  # type: ignore[attr-defined]
        mod.Builder = Builder  # type: ignore[attr-defined]
        mod.OnnxParser = Parser  # type: ignore[attr-defined]
        mod.MemoryPoolType = types.SimpleNamespace(WORKSPACE="workspace")  # type: ignore[attr-defined]
        mod.BuilderFlag = types.SimpleNamespace(FP16="fp16", INT8="int8", GPU_FALLBACK="gpu_fallback")  # type: ignore[attr-defined]
        mod.DeviceType = types.SimpleNamespace(DLA="dla", GPU="gpu")  # type: ignore[attr-defined]
        mod.NetworkDefinitionCreationFlag = types.SimpleNamespace(EXPLICIT_BATCH=0)  # type: ignore[attr-defined]
        if progress:
            mod.IProgressMonitor = IProgressMonitor  # type: ignore[attr-defined]
        return mod

    def named(self, kind: str) -> list[Any]:
        return [v for k, v in self.calls if k == kind]


def test_shape_profiles_cover_dynamic_batch_only() -> None:
    profiles = shape_profiles([("x", [None, 3, 256, 256]), ("fixed", [1, 4])], max_batch=4, opt_batch=2)
    assert [(p.name, p.min, p.opt, p.max) for p in profiles] == [
        ("x", (1, 3, 256, 256), (2, 3, 256, 256), (4, 3, 256, 256))
    ]
    with pytest.raises(EngineBuildError, match="beyond the batch"):
        shape_profiles([("x", [None, 3, None, 256])])
    with pytest.raises(EngineBuildError, match="opt batch"):
        shape_profiles([("x", [None, 3])], max_batch=1, opt_batch=2)


def test_onnx_inputs_read_dynamic_dims(tmp_path: Path) -> None:
    model = onnx.load(str(_conv_model(tmp_path / "m.onnx")))
    assert onnx_inputs(model) == [("x", [None, 3, 8, 8])]


def test_cache_key_changes_with_every_part(tmp_path: Path) -> None:
    base = EngineKey("a" * 64, "10.3.0", "Orin", "fp16")
    variants = [
        EngineKey("b" * 64, "10.3.0", "Orin", "fp16"),
        EngineKey("a" * 64, "10.4.0", "Orin", "fp16"),
        EngineKey("a" * 64, "10.3.0", "NVIDIA H100", "fp16"),
        EngineKey("a" * 64, "10.3.0", "Orin", "int8"),
        EngineKey("a" * 64, "10.3.0", "Orin", "fp16", dla_core=0),
    ]
    digests = {base.digest, *(v.digest for v in variants)}
    assert len(digests) == 6
    assert len({engine_path(tmp_path, "m", k) for k in [base, *variants]}) == 6


def test_build_then_reuse_then_rebuild_when_stale(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    model = _conv_model(tmp_path / "pose.onnx")
    cache = tmp_path / "engines"
    fake = FakeTensorRT()
    caplog.set_level(logging.INFO)
    first = build_engine(model, "fp16", cache, workspace_mb=256, gpu="Orin", trt=fake.module())
    assert not first.reused and first.path.read_bytes() == b"ENGINE-10.3.0"
    assert fake.named("pool") == [("workspace", 256 << 20)]
    assert fake.named("flag") == ["fp16"]
    assert fake.named("profile") == [("x", (1, 3, 8, 8), (1, 3, 8, 8), (1, 3, 8, 8))]
    assert fake.named("timing_cache_in") == [b""]
    assert fake.named("network_flags") == [0]
    assert "engine build: Building (2 steps)" in caplog.text
    sidecar = json.loads(first.path.with_suffix(".json").read_text())
    assert sidecar["key"]["onnx_sha256"] == sha256_file(model) and sidecar["key"]["gpu_name"] == "Orin"

    again = build_engine(model, "fp16", cache, gpu="Orin", trt=fake.module())
    assert again.reused and again.path == first.path
    assert len(fake.named("build")) == 1

    # TensorRT upgraded: the old engine is stale, rebuilt and removed; the timing cache is reused
    upgraded = build_engine(model, "fp16", cache, gpu="Orin", trt=fake.module("10.4.0"))
    assert not upgraded.reused and upgraded.removed_stale == [first.path]
    assert not first.path.exists() and upgraded.path.read_bytes() == b"ENGINE-10.4.0"
    # the ONNX changed: stale again
    _conv_model(model, bias=1.0)
    changed = build_engine(model, "fp16", cache, gpu="Orin", trt=fake.module("10.4.0"))
    assert changed.removed_stale == [upgraded.path] and not changed.reused
    assert "changed: onnx_sha256" in caplog.text
    # another precision of the same model is not stale
    other = build_engine(model, "fp32", cache, gpu="Orin", trt=fake.module("10.4.0"))
    assert other.removed_stale == [] and changed.path.exists()
    assert lookup(cache, "pose", changed.key).found


def test_tampered_sidecar_means_rebuild(tmp_path: Path) -> None:
    model = _conv_model(tmp_path / "pose.onnx")
    fake = FakeTensorRT()
    first = build_engine(model, "fp32", tmp_path, gpu="Orin", trt=fake.module())
    first.path.with_suffix(".json").write_text("{")
    second = build_engine(model, "fp32", tmp_path, gpu="Orin", trt=fake.module())
    assert not second.reused and len(fake.named("build")) == 2


def test_int8_needs_qdq_and_sets_no_calibrator(tmp_path: Path) -> None:
    fake = FakeTensorRT()
    with pytest.raises(EngineBuildError, match="no QuantizeLinear/DequantizeLinear"):
        build_engine(_conv_model(tmp_path / "fp32.onnx"), "int8", tmp_path, gpu="Orin", trt=fake.module())
    assert fake.named("build") == []
    result = build_engine(_conv_model(tmp_path / "q.onnx", qdq=True), "int8", tmp_path, gpu="Orin", trt=fake.module())
    assert sorted(fake.named("flag")) == ["fp16", "int8"]
    assert result.key.precision == "int8"


def test_dla_fallback_is_reported(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    model = _conv_model(tmp_path / "m.onnx")
    fake = FakeTensorRT(dla_cores=2, dla_ok=("conv1",))
    caplog.set_level(logging.WARNING)
    result = build_engine(model, "fp16", tmp_path, dla_core=1, gpu="Orin", trt=fake.module())
    assert result.dla_gpu_fallback_layers == ["resize", "sigmoid"]
    assert ("DLA_core", 1) in fake.calls and ("default_device_type", "dla") in fake.calls
    assert "gpu_fallback" in fake.named("flag")
    assert "2 of 3 layers cannot run on DLA core 1" in caplog.text
    with pytest.raises(EngineBuildError, match=r"cores 0\.\.1"):
        build_engine(model, "fp16", tmp_path, dla_core=2, gpu="Orin", trt=fake.module())
    with pytest.raises(EngineBuildError, match="no DLA"):
        build_engine(model, "fp16", tmp_path, dla_core=0, gpu="H100", trt=FakeTensorRT().module())
    with pytest.raises(EngineBuildError, match="FP16 or INT8"):
        build_engine(model, "fp32", tmp_path, dla_core=0, gpu="Orin", trt=fake.module())


def test_tensorrt_8_without_progress_monitor(tmp_path: Path) -> None:
    fake = FakeTensorRT()
    result = build_engine(
        _conv_model(tmp_path / "m.onnx"), "fp32", tmp_path, gpu="Xavier", trt=fake.module("8.6.2", progress=False)
    )
    assert fake.named("network_flags") == [1] and result.path.exists()


def test_engine_build_command_without_tensorrt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    model = _conv_model(tmp_path / "m.onnx")
    assert main(["engine", "build", str(model), "--precision", "fp16", "--cache", str(tmp_path / "e")]) == 1
    assert "TensorRT's Python package is not installed" in capsys.readouterr().err
