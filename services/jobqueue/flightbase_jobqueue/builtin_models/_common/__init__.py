"""Shared code of the built-in models (each model folder links this package in as ``_common``).

- :mod:`_common.dist`: one interface over Horovod, torchrun (torch.distributed) and a single process.
- :mod:`_common.trainer`: the training loop every model uses (sharding, mixed precision, gradient
  accumulation, checkpoint/resume, metrics, final model and report).
- :mod:`_common.cli`: command-line arguments built from the model's ``manifest.json``.
- :mod:`_common.data`: dataset-layout errors (exit code 2) and small readers (CSV, PNG/PPM/.npy images).
- :mod:`_common.resnet`: the ResNet-family CNN (image classification and the synthetic benchmark).
"""
