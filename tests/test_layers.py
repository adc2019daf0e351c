"""feature_layers=backbone+neck (and stride4+backbone+neck) pick the same places in every supported family, from each
model's own graph."""

from __future__ import annotations

import pytest
import torch
from ultralytics.nn.tasks import DetectionModel

from yolo_gism.layers import named_layers


@pytest.mark.parametrize(
    "yaml_name, expected",
    [
        # read off the Ultralytics yaml files: C2f at P3 and P4, SPPF at P5 (v8, v5u); C3k2, C3k2, C2PSA (11, 26)
        ("yolov8n.yaml", [4, 6, 9, 15, 18, 21]),
        ("yolov5su.yaml", [4, 6, 9, 17, 20, 23]),
        ("yolo11n.yaml", [4, 6, 10, 16, 19, 22]),
        ("yolo26n.yaml", [4, 6, 10, 16, 19, 22]),
    ],
)
def test_last_backbone_layer_at_each_detect_size_then_the_detect_inputs(yaml_name, expected):
    model = DetectionModel(yaml_name, verbose=False).train()
    assert named_layers(model, "backbone+neck") == expected
    assert model.training  # the probe leaves the model in the mode it found it
    # stride 4: layer 2 in all four (C2f, C3, C3k2, C3k2), after the stride-2 and stride-4 convs
    assert named_layers(model, "stride4+backbone+neck") == [2, *expected]
    assert named_layers(model, "neck") is None


def test_each_backbone_layer_matches_its_detect_input_in_size():
    model = DetectionModel("yolov8n.yaml", verbose=False)
    outputs = {}
    x = torch.zeros(1, 3, 128, 128)
    for i, m in enumerate(model.model[:-1]):  # Ultralytics' own routing: each layer reads the outputs named in m.f
        x = m(x if m.f == -1 else ([x if j == -1 else outputs[j] for j in m.f] if isinstance(m.f, list)
                                   else outputs[m.f]))
        outputs[i] = x
    finer, *layers = named_layers(model, "stride4+backbone+neck")
    assert outputs[finer].shape[-2:] == (32, 32)  # twice the finest Detect input's 16 x 16 (stride 8 of 128 px)
    assert all(outputs[later].shape[-2:] != (32, 32) for later in range(finer + 1, 10))
    for backbone, neck in zip(layers[:3], layers[3:]):
        assert outputs[backbone].shape[-2:] == outputs[neck].shape[-2:]
        # and it is the last one at that size: YOLOv8's backbone is layers 0 to 9
        assert all(outputs[later].shape[-2:] != outputs[neck].shape[-2:] for later in range(backbone + 1, 10))


def test_a_detect_input_with_no_backbone_layer_of_its_size_is_refused():
    # the backbone stops at stride 16; the head makes the stride-32 map itself, so the backbone has nothing beside it
    cfg = {"nc": 2, "scales": {}, "backbone": [[-1, 1, "Conv", [16, 3, 2]], [-1, 1, "Conv", [16, 3, 2]],
                                                [-1, 1, "Conv", [32, 3, 2]], [-1, 1, "Conv", [64, 3, 2]]],
           "head": [[-1, 1, "Conv", [64, 3, 2]], [[2, 3, 4], 1, "Detect", ["nc"]]]}
    model = DetectionModel(cfg, verbose=False)
    with pytest.raises(ValueError, match="backbone[+]neck: no backbone layer of this model has the size of Detect "
                                         "input 4"):
        named_layers(model, "backbone+neck")


def test_a_backbone_with_no_map_finer_than_detect_is_refused_for_stride4():
    # the backbone's first map is already the finest Detect input's size (stride 8): nothing at twice that size
    cfg = {"nc": 2, "scales": {}, "backbone": [[-1, 1, "Conv", [16, 3, 8]], [-1, 1, "Conv", [32, 3, 2]],
                                                [-1, 1, "Conv", [64, 3, 2]]],
           "head": [[[0, 1, 2], 1, "Detect", ["nc"]]]}
    model = DetectionModel(cfg, verbose=False)
    assert named_layers(model, "backbone+neck") == [0, 1, 2, 0, 1, 2]
    with pytest.raises(ValueError, match="no backbone layer of this model has twice the size of the finest Detect "
                                         "input [(]0[)]"):
        named_layers(model, "stride4+backbone+neck")


def test_an_unknown_layer_set_name_is_refused():
    with pytest.raises(ValueError, match="feature_layers=everything is not a named layer set; use one of neck, "
                                         "backbone[+]neck, stride4[+]backbone[+]neck"):
        named_layers(DetectionModel("yolov8n.yaml", verbose=False), "everything")
