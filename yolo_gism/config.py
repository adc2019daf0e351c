"""GISMConfig: every GISM setting in one typed, validated place.

GISM's own arguments travel beside Ultralytics' train arguments but never among them, so their names
must not collide with Ultralytics' keys (``box``, ``cls``, ``dfl``, ``dis``, ...). Defaults live in
``cfg/gism.yaml`` (installed as ``yolo_gism.cfg``) so that users read and copy them as YAML.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

SELECTIONS = ("gi", "gt", "conf", "none")
LEVEL_WEIGHTINGS = ("dynamic", "fixed")
TEACHER_DTYPES = ("auto", "fp32", "fp16", "bf16")
FEAT_NORMS = ("standard", "raw", "cwd")
ADAPTERS = ("conv", "mlp")
OFFLINE_TARGETS = ("aligned", "teacher")  # offline class targets: scaled by each anchor's alignment, or as they are
ASSIGNERS = ("student", "teacher")  # whose predictions rank anchors in label assignment (yolo_gism.assign)
# named layer sets, resolved per architecture (yolo_gism.layers)
FEATURE_LAYER_SETS = ("neck", "backbone+neck", "stride4+backbone+neck")


def default_yaml_path() -> Path:
    """Where the packaged GISM defaults are (works for editable and plain installs)."""
    return Path(str(resources.files("yolo_gism.cfg").joinpath("gism.yaml")))


@dataclass
class GISMConfig:
    """GISM settings; see cfg/gism.yaml for the meaning of each field."""

    temperature: float = 2.0
    alpha: float = 0.0
    kd_gain: float = 0.25
    feat_gain: float = 72.0
    cls_gain: float = 1.0
    kd_warmup: int = 0
    kd_ramp: int = 0
    kd_stop: int = 0
    kd_every: int = 1
    kd_feat: bool = True
    kd_cls: bool = True
    kd_box: bool = False
    kd_cross: bool = False
    level_weighting: str = "fixed"
    feat_norm: str = "raw"
    adapter: str = "mlp"
    selection: str = "conf"
    assign: str = "teacher"
    gi_topk: int = 30
    gi_iou: float = 0.3
    feature_layers: str = "stride4+backbone+neck"
    student_layers: list[int] | None = None
    teacher_layers: list[int] | None = None
    class_map: dict[Any, Any] | None = None
    teacher_dtype: str = "auto"
    offline: bool = False
    offline_target: str = "aligned"
    teacher: str | None = field(default=None, repr=False)  # path to a teacher checkpoint or yaml

    def __post_init__(self):
        self.validate()

    @classmethod
    def keys(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> GISMConfig:
        """Build from packaged defaults, then a gism=path.yaml file if given, then explicit values."""
        values = dict(values)
        merged = yaml.safe_load(default_yaml_path().read_text()) or {}
        user_file = values.pop("gism", None)
        chosen = {}  # what the user set, from their file and then explicitly
        if user_file is not None:
            path = Path(user_file)
            if not path.is_file():
                raise FileNotFoundError(f"gism={user_file}: GISM config file not found")
            chosen = yaml.safe_load(path.read_text()) or {}
            if not isinstance(chosen, dict):
                raise ValueError(f"gism={user_file}: expected a mapping of GISM keys, got {type(chosen).__name__}")
        chosen = {**chosen, **values}
        if chosen.get("student_layers") is not None and "feature_layers" not in chosen:
            chosen["feature_layers"] = "neck"  # explicit indices replace the default named set rather than clash
        merged.update(chosen)
        unknown = sorted(set(merged) - set(cls.keys()))
        if unknown:
            raise ValueError(f"unknown GISM key(s) {unknown}; valid keys are: {', '.join(cls.keys())}")
        return cls(**merged)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def validate(self) -> None:
        """Coerce types and raise ValueError naming the offending argument."""
        _number(self, "temperature", float, low=0.0, low_inclusive=False)
        _number(self, "alpha", float, low=0.0, high=1.0)
        _number(self, "kd_gain", float, low=0.0)
        _number(self, "feat_gain", float, low=0.0)
        _number(self, "cls_gain", float, low=0.0)
        for name in ("kd_warmup", "kd_ramp", "kd_stop"):
            _number(self, name, int, low=0)
        _number(self, "kd_every", int, low=1)
        _number(self, "gi_topk", int, low=1)
        _number(self, "gi_iou", float, low=0.0, high=1.0)
        for name in ("kd_feat", "kd_cls", "kd_box", "kd_cross", "offline"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name}={getattr(self, name)!r} must be true or false")
        _choice(self, "selection", SELECTIONS)
        _choice(self, "level_weighting", LEVEL_WEIGHTINGS)
        _choice(self, "teacher_dtype", TEACHER_DTYPES)
        _choice(self, "feat_norm", FEAT_NORMS)
        _choice(self, "adapter", ADAPTERS)
        _choice(self, "assign", ASSIGNERS)
        _choice(self, "offline_target", OFFLINE_TARGETS)
        _choice(self, "feature_layers", FEATURE_LAYER_SETS)
        for name in ("student_layers", "teacher_layers"):
            value = getattr(self, name)
            if value is not None:
                value = [value] if isinstance(value, int) else value
                if not isinstance(value, (list, tuple)) or not all(isinstance(i, int) for i in value) or not value:
                    raise ValueError(f"{name}={value!r} must be a non-empty list of layer indices")
                setattr(self, name, list(value))
        if (self.student_layers is None) != (self.teacher_layers is None):
            raise ValueError("student_layers and teacher_layers must be given together (one index list each)")
        if self.student_layers is not None and len(self.student_layers) != len(self.teacher_layers):
            raise ValueError(
                f"student_layers has {len(self.student_layers)} levels but teacher_layers has "
                f"{len(self.teacher_layers)}; they are aligned pairwise and must have the same count"
            )
        if self.feature_layers != "neck" and self.student_layers is not None:
            raise ValueError(f"feature_layers={self.feature_layers} and student_layers/teacher_layers both choose the "
                             "layers to align: give one of them")
        if self.class_map is not None and not isinstance(self.class_map, dict):
            raise ValueError(f"class_map={self.class_map!r} must be a mapping {{teacher class: student class}}")
        if not any((self.kd_feat, self.kd_cls, self.kd_box, self.kd_cross)) and self.assign != "teacher":
            raise ValueError("kd_feat, kd_cls, kd_box and kd_cross are all false and assign=student: there is "
                             "nothing to distill")
        if self.offline:
            self._check_offline()
        if self.kd_cross and (self.student_layers is not None or self.feature_layers != "neck"):
            raise ValueError("kd_cross=true runs the teacher's Detect head on the adapted student maps, so it needs "
                             "student_layers and teacher_layers left at null and feature_layers=neck (the layers "
                             "that feed Detect)")

    def _check_offline(self) -> None:
        """offline=true distils from the teacher's detections made before training (yolo_gism.offline); what needs
        the teacher's maps of each augmented batch cannot run, and asking for it is an error, not a silent no-op."""
        needs_maps = [f"{k}=true" for k in ("kd_feat", "kd_cross") if getattr(self, k)]
        needs_maps += [f"assign={self.assign}"] if self.assign == "teacher" else []
        needs_maps += [f"selection={self.selection}"] if self.selection != "none" else []
        needs_maps += ["student_layers"] if self.student_layers is not None else []
        needs_maps += [f"feature_layers={self.feature_layers}"] if self.feature_layers != "neck" else []
        if needs_maps:
            raise ValueError(f"offline=true runs the teacher once before training, so {', '.join(needs_maps)} (which "
                             "read the teacher's maps of every batch) cannot apply: set kd_feat=false kd_cross=false "
                             "assign=student selection=none feature_layers=neck, student_layers and teacher_layers unset")
        if not (self.kd_cls or self.kd_box):
            raise ValueError("offline=true with kd_cls=false and kd_box=false: there is nothing to distill")

    def teacher_active(self, epoch: int, epochs: int) -> bool:
        """False for the last kd_stop epochs: they train as stock Ultralytics, without the teacher's forward pass
        (no terms, no teacher label assignment), so distilling early and stopping also stops paying for the teacher."""
        return not (self.kd_stop and epoch >= epochs - self.kd_stop)

    def kd_lambda(self, epoch: int, epochs: int) -> float:
        """Staged schedule: 0 during warm-up, linear ramp to kd_gain, optionally 0 again for the last kd_stop epochs."""
        if epoch < self.kd_warmup or not self.teacher_active(epoch, epochs):
            return 0.0
        ramp = min(1.0, (epoch - self.kd_warmup + 1) / (self.kd_ramp + 1))
        return self.kd_gain * ramp


def _number(cfg, name, kind, low=None, high=None, low_inclusive=True):
    value = getattr(cfg, name)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name}={value!r} must be a number")
    if kind is int and float(value) != int(value):
        raise ValueError(f"{name}={value!r} must be a whole number")
    value = kind(value)
    if low is not None and (value < low or (value == low and not low_inclusive)):
        raise ValueError(f"{name}={value} must be {'>=' if low_inclusive else '>'} {low}")
    if high is not None and value > high:
        raise ValueError(f"{name}={value} must be <= {high}")
    setattr(cfg, name, value)


def _choice(cfg, name, choices):
    value = getattr(cfg, name)
    if value not in choices:
        raise ValueError(f"{name}={value!r} must be one of {choices}")


def split_gism_args(overrides: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Separate GISM keys (and gism=file) from Ultralytics train arguments, which pass through unchanged."""
    ours = set(GISMConfig.keys()) | {"gism"}
    gism = {k: v for k, v in overrides.items() if k in ours}
    rest = {k: v for k, v in overrides.items() if k not in ours}
    return gism, rest
