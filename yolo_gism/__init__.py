"""yolo_gism: GISM distillation, video frame-rate benchmarks and edge export for Ultralytics detectors.

The package root stays import-light on purpose: ``yolo_gism.runtime`` must load on an edge device
that has no torch and no ultralytics, so the training API is resolved lazily on first access.
"""

__version__ = "0.1.0"

_LAZY = {
    "GISMTrainer": "yolo_gism.trainer",
    "GISMConfig": "yolo_gism.config",
    "distill": "yolo_gism.api",
}

__all__ = [*_LAZY, "__version__"]


def __getattr__(name):
    """Import training-stack names only when they are asked for."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'yolo_gism' has no attribute {name!r}")
