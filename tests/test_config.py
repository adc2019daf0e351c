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


def test_builtin_features_recipe_is_the_builtin_feature_term():
    """cfg/gism_builtin_features.yaml changes exactly its own keys and weighs features as the built-in does."""
    import yaml

    folder = default_yaml_path().parent
    recipe = yaml.safe_load((folder / "gism_builtin_features.yaml").read_text())
    cfg, defaults = GISMConfig.from_dict({"gism": str(folder / "gism_builtin_features.yaml")}), GISMConfig.from_dict({})
    assert {k for k in GISMConfig.keys() if getattr(cfg, k) != getattr(defaults, k)} == set(recipe)
    # the built-in's weight of 6 per level: kd_gain * (1 - alpha) * feat_gain * w_l with fixed w_l = 1/3
    assert cfg.kd_gain * (1 - cfg.alpha) * cfg.feat_gain / 3 == pytest.approx(6.0)


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
