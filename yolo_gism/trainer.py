"""GISMTrainer: Ultralytics' DetectionTrainer with a frozen teacher and the GISM loss beside the student.

What it changes, each in the smallest Ultralytics method that does the job:
- __init__: takes GISM's own arguments out of the overrides (Ultralytics' pass through unchanged),
  validates them and the teacher before anything is trained or written.
- setup_model: after Ultralytics builds the student, loads the teacher, finds the aligned levels,
  builds the adapters (restored on resume).
- build_dataset: with offline=true, runs the teacher once over the training images and makes the training
  dataset carry its detections as extra instances (yolo_gism.offline).
- plot_training_samples: with offline=true, draws the ground truth only (not the teacher's instances, whose class
  column holds row codes, not classes).
- build_optimizer: adds the adapters as their own parameter group.
- _setup_train: after Ultralytics has set everything up (EMA included), puts GISMCriterion in the
  student's criterion slot.
- _model_train: each epoch, keeps the teacher in eval mode and sets lambda(epoch).
- optimizer_step: skips a step whose GISM terms were not finite; averages adapter gradients under DDP.
- save_model / save_metrics: writes the GISM state beside the checkpoint; logs lambda and level weights.
The student itself never holds an object of ours, so its checkpoints stay ordinary Ultralytics files.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
from torch import nn

from ultralytics.models.yolo.detect import DetectionTrainer
from ultralytics.utils import DEFAULT_CFG, LOGGER, RANK, colorstr
from ultralytics.utils.torch_utils import unwrap_model

from .compat import check_ultralytics_version
from .config import GISMConfig, split_gism_args
from .criterion import GISMCriterion
from .distributed import average_gradients, broadcast_module
from .hooks import FeatureRecorder
from .layers import blank_image, named_layers
from .losses import LevelWeights, make_adapter
from .offline import split_teacher_instances, teacher_detections
from .teacher import FrozenTeacher, detect_head, load_teacher_model, resolve_class_groups

check_ultralytics_version()

STATE_FILE = "gism_last.pt"  # beside last.pt: adapters, level statistics, config (plain tensors and values)


class GISMSettings:
    """Carries the GISM config through Ultralytics' DDP launcher, which rebuilds the trainer in each worker
    from the pickled class, the validated Ultralytics args (GISM keys are not among them) and the callbacks.
    Registered as a do-nothing callback so that it rides along with the callbacks."""

    def __init__(self, values: dict):
        self.values = dict(values)

    def __call__(self, trainer):
        pass


def _settings_from_callbacks(callbacks) -> dict | None:
    for funcs in (callbacks or {}).values():
        for f in funcs:
            if isinstance(f, GISMSettings):
                return f.values
    return None


class GISMTrainer(DetectionTrainer):
    """Train a detection student under a frozen teacher with the GISM loss."""

    def __init__(self, cfg=DEFAULT_CFG, overrides=None, _callbacks=None):
        gism_args, overrides = split_gism_args(dict(overrides or {}))
        self._check_ultralytics_args(overrides)
        carried = _settings_from_callbacks(_callbacks)
        resuming = bool(overrides.get("resume"))
        if not gism_args and carried is not None:  # a DDP worker rebuilding the trainer
            gism_args = carried
        if resuming and not gism_args.get("teacher"):
            gism_args = {**self._saved_settings(overrides["resume"]), **gism_args}
        if not gism_args.get("teacher"):
            raise ValueError("teacher= is required: the path to a teacher checkpoint (or model yaml)")
        self.gism = GISMConfig.from_dict(gism_args)
        from_yaml = str(self.gism.teacher).endswith((".yaml", ".yml"))
        # a bad teacher file fails before any run folder exists; a yaml teacher (tests) needs the dataset's names
        self._teacher_source = None if from_yaml else load_teacher_model(self.gism.teacher)
        super().__init__(cfg, overrides, _callbacks)
        if from_yaml:
            self._teacher_source = load_teacher_model(self.gism.teacher, names=self.data["names"])
        if carried is None:
            self.add_callback("on_pretrain_routine_start", GISMSettings(self.gism.to_dict()))
        self._check_settings()
        self.teacher = self.adapters = self.level_weights = self.recorder = self.teacher_instances = None

    # ----- validation, before training starts ---------------------------------------------------
    @staticmethod
    def _check_ultralytics_args(overrides: dict) -> None:
        from ultralytics.cfg import DEFAULT_CFG_DICT

        unknown = sorted(set(overrides) - set(DEFAULT_CFG_DICT) - {"save_dir", "session"})
        if unknown:
            raise ValueError(
                f"unknown argument(s) {unknown}: neither an Ultralytics train argument nor a GISM key; "
                f"GISM keys are: {', '.join(GISMConfig.keys())}, gism"
            )
        if overrides.get("distill_model"):
            raise ValueError("pass either teacher= (GISM) or distill_model= (Ultralytics' built-in), not both")
        batch = overrides.get("batch", DEFAULT_CFG.batch)
        if batch is not None and float(batch) < 1:
            raise ValueError(
                f"batch={batch}: AutoBatch cannot account for the teacher's memory; give an explicit batch size"
            )
        if overrides.get("compile"):
            raise ValueError("compile=True is not supported with GISM: the teacher and losses run eagerly")
        if overrides.get("quantize") == 8:
            raise ValueError("quantize=8 (quantization-aware training) is not supported with GISM distillation")
        epochs = overrides.get("epochs", DEFAULT_CFG.epochs)
        if epochs is not None and int(epochs) < 0:
            raise ValueError(f"epochs={epochs} must be >= 0")

    def _check_settings(self) -> None:
        """Classes and strides must line up; checked with the dataset known, before any weights exist."""
        student_names = self._student_class_names()
        self.class_groups = resolve_class_groups(self._teacher_source.names, student_names, self.gism.class_map)

    def _student_class_names(self) -> dict[int, str]:
        if not self.args.single_cls or self.gism.class_map or self._teacher_source.names == self.data["names"]:
            return self.data["names"]
        # single_cls: the student's one class stands for every dataset class the teacher knows
        from ultralytics.data.utils import check_det_dataset

        names = check_det_dataset(self.args.data)["names"]
        teacher_index = {v: k for k, v in self._teacher_source.names.items()}
        known = [n for n in names.values() if n in teacher_index]
        if not known:
            raise ValueError(f"single_cls: none of the dataset classes {list(names.values())} is a teacher class")
        self.gism.class_map = {n: 0 for n in known}
        return self.data["names"]

    @staticmethod
    def _saved_settings(resume) -> dict:
        if resume is True:
            from ultralytics.utils.files import get_latest_run

            resume = get_latest_run()
        path = Path(str(resume)).parent / STATE_FILE
        if not path.is_file():
            raise FileNotFoundError(
                f"resume: no GISM state ({STATE_FILE}) beside {resume}; pass teacher= (and your GISM keys) again"
            )
        return torch.load(path, map_location="cpu", weights_only=True)["config"]

    # ----- models ---------------------------------------------------------------------------
    def setup_model(self):
        ckpt = super().setup_model()
        student = unwrap_model(self.model)
        teacher_model = self._teacher_source
        if not torch.equal(teacher_model.stride.cpu(), student.stride.cpu()):
            raise ValueError(
                f"teacher strides {teacher_model.stride.tolist()} differ from the student's {student.stride.tolist()}"
            )
        self.teacher = FrozenTeacher(teacher_model, self.device, self.gism.teacher_dtype)
        channels = self._level_channels(student.to(self.device))
        self.adapters = nn.ModuleList(make_adapter(self.gism.adapter, cs, ct) for cs, ct in channels).to(self.device)
        self.level_weights = LevelWeights(len(channels), self.gism.level_weighting == "dynamic").to(self.device)
        if self.resume:
            self._load_state()
        return ckpt

    def _aligned_layers(self, student) -> tuple[list[int], list[int]] | None:
        """(student, teacher) layer indices the feature term aligns; None for the maps that feed Detect."""
        cfg = self.gism
        if cfg.feature_layers != "neck":
            layers = named_layers(student, cfg.feature_layers), named_layers(self.teacher.model, cfg.feature_layers)
            LOGGER.info(f"{colorstr('GISM:')} feature_layers={cfg.feature_layers} aligns student layers {layers[0]} "
                        f"with teacher layers {layers[1]}")
            return layers
        return None if cfg.student_layers is None else (cfg.student_layers, cfg.teacher_layers)

    def _level_channels(self, student) -> list[tuple[int, int]]:
        """Probe both models once to get each level's channels and check the levels line up."""
        aligned = self._aligned_layers(student)
        if aligned is not None:
            self.recorder = FeatureRecorder()
            for role, model, layers in (("student", student, aligned[0]), ("teacher", self.teacher.model, aligned[1])):
                for level, index in enumerate(layers):
                    if not -len(model.model) <= index < len(model.model) - 1:
                        raise ValueError(
                            f"{role}_layers: index {index} is out of range for a model with "
                            f"{len(model.model) - 1} layers before its Detect head"
                        )
                    self.recorder.watch(model.model[index], (role, level))
        image = blank_image(student)
        was_training = student.training
        student.eval()
        if self.recorder:
            self.recorder.attach()
        try:
            with torch.no_grad():
                raw = student(image)[1]
                s_feats = raw.get("one2many", raw)["feats"]
                t_feats = self.teacher(image)["feats"]
            if self.recorder:
                rec = self.recorder.pop()
                n = len(aligned[0])
                s_feats = [rec[("student", i)] for i in range(n)]
                t_feats = [rec[("teacher", i)] for i in range(n)]
        finally:
            if self.recorder:
                self.recorder.detach()
            student.train(was_training)
        if len(s_feats) != len(t_feats):
            raise ValueError(f"student has {len(s_feats)} feature levels but the teacher has {len(t_feats)}")
        for i, (s, t) in enumerate(zip(s_feats, t_feats)):
            if s.shape[-2:] != t.shape[-2:]:
                raise ValueError(f"level {i}: student map {tuple(s.shape[-2:])} and teacher map "
                                 f"{tuple(t.shape[-2:])} differ in size; choose layers at the same stride")
        return [(s.shape[1], t.shape[1]) for s, t in zip(s_feats, t_feats)]

    def build_dataset(self, img_path, mode="train", batch=None):
        dataset = super().build_dataset(img_path, mode, batch)
        if mode == "train" and self.gism.offline:
            started = time.perf_counter()
            self.teacher_instances = teacher_detections(self.teacher, self.class_groups, dataset.im_files,
                                                        self.args.imgsz)
            seconds = time.perf_counter() - started
            self.teacher_instances.attach(dataset, nc=len(self.data["names"]))
            if RANK in {-1, 0}:
                LOGGER.info(f"{colorstr('GISM:')} offline teacher: {len(self.teacher_instances)} instances on "
                            f"{len(dataset.im_files)} training images in {seconds:.1f} s")
        return dataset

    def build_optimizer(self, model, name="auto", lr=0.001, momentum=0.9, decay=1e-5, iterations=1e5):
        optimizer = super().build_optimizer(model, name, lr, momentum, decay, iterations)
        if self.adapters is not None:
            plain = [g for g in optimizer.param_groups if not g.get("use_muon")]
            template = next((g for g in plain if g.get("param_group") == "weight"), plain[0])
            group = {k: v for k, v in template.items() if k not in {"params", "initial_lr"}}
            optimizer.add_param_group({**group, "params": list(self.adapters.parameters()), "param_group": "adapter"})
        return optimizer

    def _setup_train(self):
        super()._setup_train()
        broadcast_module(self.adapters)  # ranks are seeded differently; start from rank 0's adapters
        student = unwrap_model(self.model)
        if self.recorder:
            self.recorder.attach()
        detection = student.criterion if getattr(student, "criterion", None) is not None else student.init_criterion()
        head = detect_head(student)
        student.criterion = GISMCriterion(
            detection, self.teacher, self.adapters, self.level_weights, self.gism, self.class_groups,
            student_reg_max=head.reg_max, teacher_reg_max=detect_head(self.teacher.model).reg_max,
            strides=head.stride.to(self.device), recorder=self.recorder,
            instance_logits=None if self.teacher_instances is None else self.teacher_instances.logits.to(self.device),
        )
        if RANK in {-1, 0}:
            LOGGER.info(f"{colorstr('GISM:')} teacher {self.gism.teacher}, {len(self.adapters)} levels, "
                        f"T={self.gism.temperature}, alpha={self.gism.alpha}, selection={self.gism.selection}")

    @property
    def gism_criterion(self) -> GISMCriterion | None:
        crit = getattr(unwrap_model(self.model), "criterion", None) if isinstance(self.model, nn.Module) else None
        return crit if isinstance(crit, GISMCriterion) else None

    def train(self):
        try:
            return super().train()
        finally:
            if self.recorder is not None:
                self.recorder.detach()

    # ----- per epoch and per step -------------------------------------------------------------
    def kd_lambda(self) -> float:
        return self.gism.kd_lambda(getattr(self, "epoch", 0), self.epochs)

    def _model_train(self):
        super()._model_train()
        self.adapters.train()
        if self.teacher is not None:
            self.teacher.eval()
        if self.gism_criterion is not None:
            teacher_active = self.gism.teacher_active(self.epoch, self.epochs)
            self.gism_criterion.start_epoch(self.epoch, self.kd_lambda(), teacher_active)

    def optimizer_step(self):
        crit = self.gism_criterion
        if crit is not None and crit.problem:
            LOGGER.warning(f"{colorstr('GISM:')} skipped an optimizer step: {crit.problem}")
            self.skipped_steps = getattr(self, "skipped_steps", []) + [crit.problem]
            crit.problem = None
            self.optimizer.zero_grad()
            return
        average_gradients(self.adapters)
        super().optimizer_step()

    # ----- logging and checkpoints ---------------------------------------------------------------
    def plot_training_samples(self, batch, ni):
        if self.gism.offline:
            batch = split_teacher_instances(batch, len(self.data["names"]))[0]
        super().plot_training_samples(batch, ni)

    def save_metrics(self, metrics):
        extra = {"gism/lambda": self.kd_lambda()}
        for i, w in enumerate(self.level_weights.weights().tolist()):
            extra[f"gism/w{i}"] = w
        super().save_metrics({**metrics, **extra})

    def save_model(self):
        saved = super().save_model()
        state = {
            "config": self.gism.to_dict(),
            "adapters": {k: v.detach().cpu() for k, v in self.adapters.state_dict().items()},
            "level_weights": {k: v.detach().cpu() for k, v in self.level_weights.state_dict().items()},
            "epoch": self.epoch,
        }
        torch.save(state, self.wdir / STATE_FILE)
        return saved

    def _load_state(self) -> None:
        path = Path(str(self.args.resume)).parent / STATE_FILE
        state = torch.load(path, map_location=self.device, weights_only=True)
        self.adapters.load_state_dict(state["adapters"])
        self.level_weights.load_state_dict(state["level_weights"])
        LOGGER.info(f"{colorstr('GISM:')} restored adapters and level weights from {path}")
