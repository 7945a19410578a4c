"""lightning_critrm: train reward models that read synthetic critiques, with PyTorch Lightning."""

__version__ = "0.1.0"
