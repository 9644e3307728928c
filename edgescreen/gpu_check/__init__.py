"""The GPU check: one prepared run that proves the TensorRT path and the published-size trainings on a machine
with an NVIDIA GPU (a workstation, a cloud GPU or a Jetson), within a fixed time, and leaves a report.

`scripts/gpu-check.sh OUTDIR [--wheels DIR]` (or `make gpu-check OUT=DIR`) installs what it is given and runs
`python -m edgescreen.gpu_check OUTDIR`. Each step runs in its own process with its own time budget
(steps.py); a step that fails or runs over is recorded and the next one starts. The steps:

- environment.py  GPU, driver, CUDA, TensorRT, pycuda, torch versions
- engines.py      perception models present (converted offline if a wheel is at hand); FP16 and INT8
                  engines of every perception and trained model with the project's builder, parity
                  against ONNX Runtime with `export verify`'s gates, batch-1 latency
- runtime.py      `edgescreen edge run` on the TensorRT backend, one clip per role: fps and GPU memory
- training_speed.py  each published-size network trained for a few epochs on generated tensors:
                  samples/s and peak GPU memory
- estimate.py     full cross-validation time of each task in docs/results.md from those figures
- report.py       OUTDIR/gpu-report.json and OUTDIR/gpu-report.md
"""
