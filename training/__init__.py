"""Training: synthetic data, dataset loaders, models, cross-validation. Workstation only (torch)."""
