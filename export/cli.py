"""Workstation-side commands of export: the modules that add them (each has `register(groups)`)."""

COMMANDS = (
    "export.commands.fetch",  # models fetch
    "export.commands.chain",  # export onnx | quantize | fp16 | verify | bundle
    "export.commands.device_models",  # models train-device
)
