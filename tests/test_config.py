"""GISMConfig: defaults from the packaged YAML, key=value and file overrides, and clear errors."""

import pytest
from ultralytics.cfg import DEFAULT_CFG_DICT

from yolo_gism.config import GISMConfig, default_yaml_path, split_gism_args


def test_packaged_defaults_match_the_dataclass():
    import yaml

    from_yaml = yaml.safe_load(default_yaml_path().read_text())
    cfg = GISMConfig.from_dict({})
    for key, value in from_yaml.items():
        assert getattr(cfg, key) == value, key


def test_defaults_are_the_builtin_feature_term_spread_over_seven_levels():
    """Since 2026-12-07 the defaults are cfg/gism_builtin_features.yaml (the built-in's feature term: raw L2,
    conv-ReLU-conv adapter, teacher-confidence weights) on the seven named levels instead of the three neck maps,
    the same total weight: the file differs from them in feature_layers alone."""
    import yaml

    folder = default_yaml_path().parent
    recipe = yaml.safe_load((folder / "gism_builtin_features.yaml").read_text())
    cfg, defaults = GISMConfig.from_dict({"gism": str(folder / "gism_builtin_features.yaml")}), GISMConfig.from_dict({})
    assert {k for k in GISMConfig.keys() if getattr(cfg, k) != getattr(defaults, k)} == {"feature_layers"}
    assert (cfg.feature_layers, defaults.feature_layers) == ("neck", "stride4+backbone+neck")
    assert set(recipe) <= set(GISMConfig.keys())
    # the built-in's weight of 6 per level at three levels: kd_gain * (1 - alpha) * feat_gain * w_l, fixed w_l = 1/3;
    # the defaults spread the same 18 over seven levels, beside the class term at kd_gain * cls_gain = 1/4
    assert cfg.kd_gain * (1 - cfg.alpha) * cfg.feat_gain / 3 == pytest.approx(6.0)
    assert (defaults.level_weighting, defaults.kd_gain * (1 - defaults.alpha) * defaults.feat_gain) == ("fixed", 18.0)
    assert defaults.kd_gain * defaults.cls_gain == 0.25
    assert (defaults.feat_norm, defaults.adapter, defaults.selection, defaults.assign) == ("raw", "mlp", "conf",
                                                                                          "teacher")
    assert (defaults.kd_warmup, defaults.kd_ramp, defaults.kd_box, defaults.temperature) == (0, 0, False, 2.0)


def test_the_old_defaults_file_writes_out_every_key_as_it_was():
    """cfg/gism_v1.yaml holds the defaults until 2026-12-07 in full, so runs that name it keep their settings
    whatever cfg/gism.yaml becomes."""
    import yaml

    path = default_yaml_path().parent / "gism_v1.yaml"
    written = yaml.safe_load(path.read_text())
    assert set(written) == set(GISMConfig.keys()) - {"teacher"}
    old = {"temperature": 2.0, "alpha": 0.5, "kd_gain": 4.0, "feat_gain": 1.0, "cls_gain": 1.0, "kd_warmup": 1,
           "kd_ramp": 2, "kd_stop": 0, "kd_every": 1, "kd_feat": True, "kd_cls": True, "kd_box": False,
           "kd_cross": False, "level_weighting": "dynamic", "feat_norm": "standard", "adapter": "conv",
           "selection": "none", "assign": "teacher", "gi_topk": 30, "gi_iou": 0.3, "feature_layers": "neck",
           "student_layers": None, "teacher_layers": None, "class_map": None, "teacher_dtype": "auto",
           "offline": False, "offline_target": "aligned"}
    assert written == old
    assert GISMConfig.from_dict({"gism": str(path)}).to_dict() == {**old, "teacher": None}


def test_explicit_layer_indices_replace_the_default_named_set():
    cfg = GISMConfig.from_dict({"student_layers": [15, 18], "teacher_layers": [15, 18]})
    assert (cfg.feature_layers, cfg.student_layers) == ("neck", [15, 18])
    with pytest.raises(ValueError, match="give one of them"):  # both asked for: which one is meant is unclear
        GISMConfig.from_dict({"feature_layers": "stride4+backbone+neck", "student_layers": [4], "teacher_layers": [4]})


def test_no_gism_key_collides_with_ultralytics():
    assert not (set(GISMConfig.keys()) | {"gism"}) & set(DEFAULT_CFG_DICT)


def test_file_then_explicit_values(tmp_path):
    f = tmp_path / "mine.yaml"
    f.write_text("temperature: 4\nalpha: 0.2\n")
    cfg = GISMConfig.from_dict({"gism": str(f), "alpha": 0.7})
    assert (cfg.temperature, cfg.alpha) == (4.0, 0.7)


def test_unknown_key_lists_valid_ones():
    with pytest.raises(ValueError, match=r"unknown GISM key\(s\) \['temprature'\].*temperature"):
        GISMConfig.from_dict({"temprature": 3})


@pytest.mark.parametrize(
    "values, match",
    [
        ({"temperature": 0}, "temperature=0.0 must be >"),
        ({"temperature": -1}, "temperature"),
        ({"alpha": 1.5}, "alpha=1.5 must be <= 1"),
        ({"alpha": -0.1}, "alpha"),
        ({"kd_warmup": -1}, "kd_warmup"),
        ({"kd_every": 0}, "kd_every=0 must be >= 1"),
        ({"cls_gain": -0.5}, "cls_gain=-0.5 must be >= 0"),
        ({"selection": "all"}, "selection"),
        ({"adapter": "linear"}, r"adapter='linear' must be one of \('conv', 'mlp'\)"),
        ({"feat_norm": "l2"}, "feat_norm"),
        ({"assign": "gt"}, r"assign='gt' must be one of \('student', 'teacher'\)"),
        ({"student_layers": [1, 2], "teacher_layers": [1]}, "same count"),
        ({"student_layers": [1]}, "together"),
        ({"kd_feat": False, "kd_cls": False, "kd_box": False, "kd_cross": False, "assign": "student"},
         "nothing to distill"),
        ({"kd_cross": True, "student_layers": [15], "teacher_layers": [15]}, "kd_cross=true runs the teacher's Detect"),
        ({"kd_cross": 1}, "kd_cross=1 must be true or false"),
        ({"feature_layers": "all"},
         r"feature_layers='all' must be one of \('neck', 'backbone\+neck', 'stride4\+backbone\+neck'\)"),
        ({"feature_layers": "backbone+neck", "student_layers": [4], "teacher_layers": [4]}, "give one of them"),
        ({"kd_cross": True, "feature_layers": "backbone+neck"}, "feature_layers=neck"),
    ],
)
def test_invalid_values_name_the_argument(values, match):
    with pytest.raises(ValueError, match=match):
        GISMConfig.from_dict(values)


def test_missing_gism_file():
    with pytest.raises(FileNotFoundError, match="gism=nope.yaml"):
        GISMConfig.from_dict({"gism": "nope.yaml"})


def test_lambda_schedule_warmup_ramp_stop():
    cfg = GISMConfig.from_dict({"kd_warmup": 2, "kd_ramp": 1, "kd_stop": 2, "kd_gain": 3.0})
    assert [cfg.kd_lambda(e, 10) for e in range(10)] == [0, 0, 1.5, 3, 3, 3, 3, 3, 0, 0]


def test_split_keeps_ultralytics_args_unchanged():
    gism, rest = split_gism_args({"epochs": 3, "box": 7.5, "temperature": 2, "gism": "x.yaml", "teacher": "t.pt"})
    assert rest == {"epochs": 3, "box": 7.5}
    assert gism == {"temperature": 2, "gism": "x.yaml", "teacher": "t.pt"}
