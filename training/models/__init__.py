"""Model architectures of the studies, written in plain torch (no torchvision), and their registry."""
