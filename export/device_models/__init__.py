"""The device models after training: export, INT8 behind the parity gate, model cards, signed bundles, installed.

The trainers and their `TrainedModel` live in training/device_models/; this package takes what they hand over
down the export chain (export imports training, never the reverse)."""
