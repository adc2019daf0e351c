"""Named sets of layers for the feature term, resolved for each architecture from its own graph.

Layer indices differ between YOLOv8, YOLOv5u, YOLO11 and YOLO26, so a setting written as indices only fits one
family. ``feature_layers=backbone+neck`` names a set instead: for every map that feeds Detect, the last backbone
layer whose output has the same size (YOLOv8n: 4, 6, 9 beside 15, 18, 21; YOLO11n: 4, 6, 10 beside 16, 19, 22).
``stride4+backbone+neck`` leads those with the last backbone layer at twice the finest Detect input's size (stride 4
in the stock models: layer 2 of YOLOv8, YOLOv5u, YOLO11 and YOLO26), the finest map the student ever makes.
"""

from __future__ import annotations

import torch

from .config import FEATURE_LAYER_SETS
from .hooks import FeatureRecorder


def detect_inputs(model) -> list[int]:
    """Indices of the layers whose outputs Detect reads (Ultralytics records them as the head's ``f``)."""
    return list(model.model[-1].f)


def named_layers(model, name: str) -> list[int] | None:
    """The layer indices a named set stands for in this model; None for ``neck`` (the maps Detect reads anyway)."""
    if name == "neck":
        return None
    if name not in FEATURE_LAYER_SETS:
        raise ValueError(f"feature_layers={name} is not a named layer set; use one of {', '.join(FEATURE_LAYER_SETS)}")
    neck = detect_inputs(model)
    backbone = range(len(model.yaml["backbone"]))
    sizes = _output_sizes(model, [*backbone, *neck])

    def last_backbone_layer(size: tuple[int, int], what: str) -> int:
        same_size = [i for i in backbone if sizes.get(i) == size]
        if not same_size:
            raise ValueError(f"feature_layers={name}: no backbone layer of this model has {what}; "
                             "give student_layers and teacher_layers as indices instead")
        return same_size[-1]

    beside_neck = [last_backbone_layer(sizes[i], f"the size of Detect input {i}") for i in neck]
    if name == "backbone+neck":
        return beside_neck + neck
    finest = max(neck, key=lambda i: sizes[i])
    height, width = sizes[finest]
    finer = last_backbone_layer((2 * height, 2 * width), f"twice the size of the finest Detect input ({finest})")
    return [finer, *beside_neck, *neck]


def blank_image(model) -> torch.Tensor:
    """A black image twice the model's largest stride (at least 64 px) on its device and in its dtype: enough for
    every level to have a map, small enough that probing the layers costs nothing at start-up."""
    size = int(max(model.stride.max(), 32)) * 2
    parameter = next(model.parameters())
    return torch.zeros(1, 3, size, size, device=parameter.device, dtype=parameter.dtype)


def _output_sizes(model, indices) -> dict[int, tuple[int, int]]:
    """Spatial size of each listed layer's output on a small blank image (layers with non-map outputs are left out)."""
    recorder = FeatureRecorder()
    for i in indices:
        recorder.watch(model.model[i], i)
    image = blank_image(model)
    was_training = model.training
    model.eval()
    recorder.attach()
    try:
        with torch.no_grad():
            model(image)
        outputs = recorder.pop()
    finally:
        recorder.detach()
        model.train(was_training)
    return {i: tuple(out.shape[-2:]) for i, out in outputs.items() if isinstance(out, torch.Tensor) and out.ndim == 4}
