#!/usr/bin/env bash
# The GPU check: TensorRT engines (FP16 and INT8) of every perception and trained model with parity and
# latency, `edgescreen edge run` on the TensorRT backend per role, and the published-size networks'
# training speed, in at most nine minutes; writes OUTDIR/gpu-report.json and OUTDIR/gpu-report.md.
#
#   scripts/gpu-check.sh OUTDIR [--wheels DIR]        (or: make gpu-check OUT=DIR [WHEELS=DIR])
#
# Without an NVIDIA GPU it prints one line saying it skipped and exits 0. It never downloads: it installs
# only from --wheels DIR (pip --no-index) what is not installed yet, or uses what is there. Works on
# x86-64 and on a Jetson (aarch64, TensorRT from JetPack). See docs/jetson.md, "The GPU check".
set -uo pipefail

LIMIT_S=${GPU_CHECK_LIMIT_S:-540}   # the whole script, installing included
TEGRA_RELEASE=${EDGESCREEN_TEGRA_RELEASE:-/etc/nv_tegra_release}   # L4T's release file on a Jetson
MARGIN_S=25                         # for starting Python and writing the report after the last step
started=$SECONDS

usage() { echo "usage: $0 OUTDIR [--wheels DIR]" >&2; exit 2; }
OUT="" WHEELS=""
while [ $# -gt 0 ]; do
    case "$1" in
        --wheels) [ $# -ge 2 ] || usage; WHEELS=$2; shift 2 ;;
        --wheels=*) WHEELS=${1#*=}; shift ;;
        -h | --help) usage ;;
        -*) echo "error: unknown option $1" >&2; usage ;;
        *) [ -z "$OUT" ] || usage; OUT=$1; shift ;;
    esac
done
[ -n "$OUT" ] || usage

# The signs of an NVIDIA GPU, on any CPU architecture: a GPU listed by nvidia-smi, the device node, or a
# Jetson (L4T; older JetPacks have no nvidia-smi and no /dev/nvidia0).
gpu_sign() {
    if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L 2>/dev/null | grep -q '^GPU '; then
        echo "nvidia-smi"
    elif [ -e /dev/nvidia0 ]; then
        echo "/dev/nvidia0"
    elif [ -e "$TEGRA_RELEASE" ] || grep -qas 'nvidia,tegra' /proc/device-tree/compatible; then
        echo "Jetson"
    else
        return 1
    fi
}
if ! gpu_sign >/dev/null; then
    echo "gpu-check: skipped: no NVIDIA GPU on this machine (no GPU from nvidia-smi, no /dev/nvidia0, not a Jetson)"
    exit 0
fi

if [ -n "$WHEELS" ] && [ ! -d "$WHEELS" ]; then
    echo "error: --wheels $WHEELS is not a folder" >&2
    exit 2
fi
ROOT=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$OUT" && OUT=$(cd "$OUT" && pwd)
[ -z "$WHEELS" ] || WHEELS=$(cd "$WHEELS" && pwd)
cd "$ROOT" || exit 1

# Never download: pip may only read the wheels folder.
export PIP_NO_INDEX=1 PIP_DISABLE_PIP_VERSION_CHECK=1
pip_from_wheels() { "$PY" -m pip install -q --no-index --find-links "$WHEELS" "$@"; }
has_wheel() { [ -n "$WHEELS" ] && compgen -G "$WHEELS/$1[-_]*" >/dev/null; }

PY=${GPU_CHECK_PYTHON:-.venv/bin/python}   # another interpreter than the project's .venv, if set
if [ -z "${GPU_CHECK_PYTHON:-}" ] && [ ! -x .venv/bin/python ]; then
    if [ -z "$WHEELS" ]; then
        echo "error: no .venv in $ROOT and no --wheels DIR to make one from (see docs/jetson.md)" >&2
        exit 2
    fi
    # --system-site-packages: on a Jetson the venv sees JetPack's tensorrt (python3-libnvinfer)
    python3 -m venv --system-site-packages .venv || exit 1
fi
if ! "$PY" -c "import edgescreen.gpu_check, torch, onnxruntime, onnx" 2>/dev/null; then
    if [ -z "$WHEELS" ]; then
        echo "error: the project is not installed for $PY and no --wheels DIR was given" >&2
        exit 2
    fi
    echo "gpu-check: installing the project from $WHEELS" >&2
    constraints=()
    [ -f constraints.txt ] && constraints=(-c constraints.txt)
    pip_from_wheels "${constraints[@]}" -e ".[edge,export,train]" || exit 1
fi
for sdk in tensorrt pycuda; do
    if ! "$PY" -c "import $sdk" 2>/dev/null && has_wheel "$sdk"; then
        echo "gpu-check: installing $sdk from $WHEELS" >&2
        pip_from_wheels "$sdk" || echo "gpu-check: $sdk did not install; its steps will say so" >&2
    fi
done

left=$((LIMIT_S - (SECONDS - started)))
budget=$((left - MARGIN_S))
if [ "$budget" -lt 60 ]; then
    echo "error: installing took $((SECONDS - started)) s; under a minute is left of the ${LIMIT_S} s" >&2
    exit 1
fi
args=("$OUT" --budget-s "$budget")
[ -z "$WHEELS" ] || args+=(--wheels "$WHEELS")
# the check stops its own steps at the budget; this is the backstop if Python itself hangs
timeout --signal=TERM --kill-after=15 "$((left - 5))" "$PY" -m edgescreen.gpu_check "${args[@]}"
