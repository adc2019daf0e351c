"""GISMTrainer end to end on a tiny dataset, with a teacher trained once per test run (see conftest)."""

from __future__ import annotations

import csv
import hashlib
import os
import pickletools
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch

from yolo_gism import GISMTrainer, distill
from yolo_gism.criterion import GISMCriterion, LOSS_NAMES

FAST = dict(imgsz=128, batch=16, device="cpu", workers=0, plots=False, seed=0, deterministic=False, amp=False,
            verbose=False, exist_ok=True)
# every GISM term (the box term at the weight of the defaults until 2026-12-07) and GI selection, whatever the defaults;
# the cross-head term needs the Detect inputs as the aligned maps
ALL_TERMS = dict(kd_box=True, kd_cross=True, selection="gi", feature_layers="neck", alpha=0.5)


def _digest(model: torch.nn.Module) -> str:
    h = hashlib.sha256()
    for k, v in model.state_dict().items():
        h.update(k.encode())
        h.update(v.detach().cpu().numpy().tobytes())
    return h.hexdigest()


def _rows(csv_path: Path) -> list[dict]:
    with open(csv_path) as f:
        return [{k.strip(): v for k, v in row.items()} for row in csv.DictReader(f)]


@pytest.fixture(scope="session")
def distilled_run(trained_teacher, tiny_data, tmp_path_factory):
    """Two epochs: the first detection-only (kd_warmup=1), the second with lambda = kd_gain = 1."""
    project = tmp_path_factory.mktemp("distill")
    from ultralytics.nn.tasks import load_checkpoint

    before = _digest(load_checkpoint(str(trained_teacher))[0])
    distill("yolov8n.yaml", teacher=str(trained_teacher), data=str(tiny_data), epochs=2, project=str(project),
            name="run", kd_warmup=1, kd_ramp=0, kd_gain=1.0, **ALL_TERMS, **FAST)
    return project / "run", before


def test_results_csv_has_gism_columns_zero_in_warmup_then_finite_nonzero(distilled_run):
    rows = _rows(distilled_run[0] / "results.csv")
    assert len(rows) == 2
    for name in LOSS_NAMES:
        assert f"train/{name}" in rows[0] and f"val/{name}" in rows[0]
        assert float(rows[0][f"train/{name}"]) == 0.0  # warm-up epoch
        value = float(rows[1][f"train/{name}"])
        assert value > 0 and value < 1e3
    assert [float(r["gism/lambda"]) for r in rows] == [0.0, 1.0]
    weights = [float(rows[1][f"gism/w{i}"]) for i in range(3)]
    assert abs(sum(weights) - 1) < 1e-4 and all(w > 0 for w in weights)


def test_teacher_weights_bit_identical_after_distillation(distilled_run, trained_teacher):
    from ultralytics.nn.tasks import load_checkpoint

    assert _digest(load_checkpoint(str(trained_teacher))[0]) == distilled_run[1]


def pickled_modules(data: bytes) -> set[str]:
    """Modules whose classes or functions a pickle refers to (GLOBAL and STACK_GLOBAL opcodes)."""
    modules, strings = set(), []
    for op, arg, _ in pickletools.genops(data):
        if op.name == "GLOBAL":
            modules.add(arg.split(" ")[0])
        elif op.name == "STACK_GLOBAL":
            modules.add(strings[-2])
        elif "UNICODE" in op.name:
            strings.append(arg)
    return modules


def test_checkpoints_hold_no_yolo_gism_object(distilled_run):
    for name in ("best.pt", "last.pt"):
        with zipfile.ZipFile(distilled_run[0] / "weights" / name) as z:
            pickled = [z.read(n) for n in z.namelist() if n.endswith(".pkl")]
        modules = set().union(*(pickled_modules(p) for p in pickled))
        assert "ultralytics.nn.tasks" in modules
        assert not [m for m in modules if m.startswith("yolo_gism")]


_STOCK_CHECK = """
import sys
sys.modules["yolo_gism"] = None  # importing yolo_gism now fails
from ultralytics import YOLO
model = YOLO(sys.argv[1])
metrics = model.val(data=sys.argv[2], imgsz=128, batch=16, device="cpu", plots=False, verbose=False)
results = model.predict(sys.argv[3], imgsz=128, device="cpu", verbose=False)
onnx = YOLO(sys.argv[1]).export(format="onnx", imgsz=128, simplify=False)
print("OK", metrics.box.map50, len(results), onnx)
"""


@pytest.mark.parametrize("safe_load", ["0", "1"])
def test_checkpoint_works_with_stock_ultralytics_without_yolo_gism(distilled_run, tiny_data, tmp_path, safe_load):
    best = tmp_path / "best.pt"
    best.write_bytes((distilled_run[0] / "weights" / "best.pt").read_bytes())
    image = next((tiny_data.parent / "images" / "val").iterdir())
    env = {**os.environ, "ULTRALYTICS_SAFE_LOAD": safe_load, "YOLO_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "-c", _STOCK_CHECK, str(best), str(tiny_data), str(image)],
                         capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "OK" in out.stdout and (tmp_path / "best.onnx").exists()


def _trainer(tiny_data, teacher, tmp_path, **kw) -> GISMTrainer:
    args = dict(model="yolov8n.yaml", data=str(tiny_data), teacher=str(teacher), epochs=2, project=str(tmp_path),
                name="t", **ALL_TERMS, **FAST)
    args.update(kw)
    return GISMTrainer(overrides=args)


def _one_step_loss(trainer: GISMTrainer, epoch: int = 1):
    trainer._setup_train()
    trainer.epoch = epoch
    trainer._model_train()
    batch = trainer.preprocess_batch(next(iter(trainer.train_loader)))
    loss, items = trainer.model(batch)
    return loss, items


def test_gradients_reach_student_and_adapters_not_teacher(tiny_data, trained_teacher, tmp_path):
    trainer = _trainer(tiny_data, trained_teacher, tmp_path, kd_warmup=0, kd_ramp=0)
    loss, items = _one_step_loss(trainer)
    assert all(float(items[n]) > 0 for n in LOSS_NAMES)
    loss.sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in trainer.adapters.parameters())
    assert sum(p.grad.abs().sum() for p in trainer.model.parameters() if p.grad is not None) > 0
    assert all(p.grad is None and not p.requires_grad for p in trainer.teacher.model.parameters())
    assert not trainer.teacher.model.training
    trainer.model.train()
    trainer._model_train()
    assert not trainer.teacher.model.training  # still eval, BatchNorm included


def test_gt_selection_distils_only_inside_labelled_boxes(tiny_data, trained_teacher, tmp_path):
    trainer = _trainer(tiny_data, trained_teacher, tmp_path, kd_warmup=0, kd_ramp=0, selection="gt")
    trainer._setup_train()
    trainer.epoch = 1
    trainer._model_train()
    batch = trainer.preprocess_batch(next(iter(trainer.train_loader)))
    seen = {}
    anchor_weight = trainer.gism_criterion.anchor_weight

    def recording(*args):
        seen["weight"], seen["instances"] = anchor_weight(*args)
        return seen["weight"], seen["instances"]

    trainer.gism_criterion.anchor_weight = recording
    _, items = trainer.model(batch)
    assert all(float(items[n]) > 0 for n in LOSS_NAMES)
    counts = [len(boxes) for boxes in seen["instances"]]
    assert counts == [int((batch["batch_idx"] == i).sum()) for i in range(len(counts))]  # one per label
    assert 0 < seen["weight"].mean() < 1  # inside the boxes only


def test_distillation_part_scales_with_batch_like_ultralytics(tiny_data, trained_teacher, tmp_path):
    trainer = _trainer(tiny_data, trained_teacher, tmp_path, kd_warmup=0, kd_ramp=0)
    loss, items = _one_step_loss(trainer)
    batch_size = trainer.train_loader.batch_size
    torch.testing.assert_close(loss[-1].detach(), sum(items[n] for n in LOSS_NAMES) * batch_size,
                               rtol=1e-5, atol=1e-5)


def _count_teacher_calls(criterion) -> list[int]:
    """Wrap the criterion's teacher so that each forward pass appends its batch size to the returned list."""
    calls, real_teacher = [], criterion.teacher

    class Counting:
        head_outputs = staticmethod(real_teacher.head_outputs)

        def __call__(self, images):
            calls.append(len(images))
            return real_teacher(images)

    criterion.teacher = Counting()
    return calls


def test_kd_every_runs_the_teacher_on_every_kth_batch_only(tiny_data, trained_teacher, tmp_path):
    trainer = _trainer(tiny_data, trained_teacher, tmp_path, kd_warmup=0, kd_ramp=0, kd_every=2)
    trainer._setup_train()
    trainer.epoch = 1
    trainer._model_train()
    batch = trainer.preprocess_batch(next(iter(trainer.train_loader)))
    criterion = trainer.gism_criterion
    calls = _count_teacher_calls(criterion)
    items = [trainer.model(batch)[1] for _ in range(4)]
    kd_parts = [float(sum(i[n] for n in LOSS_NAMES)) for i in items]
    assert len(calls) == 2  # batches 1 and 3: the teacher's forward, its cost, is skipped on the others
    assert kd_parts[0] > 0 and kd_parts[2] > 0 and kd_parts[1] == 0 and kd_parts[3] == 0
    assert criterion.assigner._pending is None  # nothing left over for a batch the teacher did not see


def test_kd_stop_epochs_train_without_the_teacher_at_all(tiny_data, trained_teacher, tmp_path):
    trainer = _trainer(tiny_data, trained_teacher, tmp_path, kd_warmup=0, kd_ramp=0, kd_stop=1, epochs=3)
    trainer._setup_train()
    batch = trainer.preprocess_batch(next(iter(trainer.train_loader)))
    criterion = trainer.gism_criterion
    calls = _count_teacher_calls(criterion)
    kd_parts = []
    for epoch in (1, 2):  # of 3: epoch 2 is the last, inside kd_stop=1
        trainer.epoch = epoch
        trainer._model_train()
        items = trainer.model(batch)[1]
        kd_parts.append(float(sum(items[n] for n in LOSS_NAMES)))
    assert trainer.kd_lambda() == 0.0 and not criterion.teacher_active
    assert len(calls) == 1  # epoch 1 only: in the stop window neither the terms nor the assignment run it
    assert kd_parts[0] > 0 and kd_parts[1] == 0
    assert criterion.assigner._pending is None


def test_student_copies_never_carry_gism_objects(tiny_data, trained_teacher, tmp_path):
    import copy
    import io

    trainer = _trainer(tiny_data, trained_teacher, tmp_path, kd_warmup=0, kd_ramp=0)
    _one_step_loss(trainer)
    assert isinstance(trainer.model.criterion, GISMCriterion)
    clone = copy.deepcopy(trainer.model)
    assert clone.criterion is None
    buffer = io.BytesIO()
    torch.save(trainer.model, buffer)
    assert b"yolo_gism" not in buffer.getvalue()
    assert not any(m._forward_hooks for m in trainer.model.modules())


def _trainer_with_corrupted_teacher(tiny_data, trained_teacher, tmp_path, corrupt) -> GISMTrainer:
    """A set-up trainer (lambda > 0) whose teacher outputs pass through `corrupt` before the losses see them."""
    trainer = _trainer(tiny_data, trained_teacher, tmp_path, kd_warmup=0, kd_ramp=0)
    trainer._setup_train()
    trainer.epoch = 0
    trainer._model_train()
    real_teacher = trainer.gism_criterion.teacher

    class Corrupted:  # the teacher's forward corrupted; its head (cross-head term) left as it is
        head_outputs = staticmethod(real_teacher.head_outputs)

        def __call__(self, images):
            return corrupt(dict(real_teacher(images)))

    trainer.gism_criterion.teacher = Corrupted()
    return trainer


def test_non_finite_term_skips_the_step_and_says_where(tiny_data, trained_teacher, tmp_path):
    def nan_scores(preds):
        preds["scores"] = preds["scores"] * float("nan")
        return preds

    trainer = _trainer_with_corrupted_teacher(tiny_data, trained_teacher, tmp_path, nan_scores)
    before = {k: v.detach().clone() for k, v in trainer.model.named_parameters()}
    batch = trainer.preprocess_batch(next(iter(trainer.train_loader)))
    loss, items = trainer.model(batch)
    assert torch.isfinite(loss).all()
    loss.sum().backward()
    trainer.optimizer_step()
    assert "cls term" in trainer.skipped_steps[0] and "epoch 1, batch 1" in trainer.skipped_steps[0]
    assert "label assignment (the student assigned this batch)" in trainer.skipped_steps[0]  # assign=teacher
    after = dict(trainer.model.named_parameters())
    assert all(torch.equal(before[k], after[k]) for k in before)  # no update (BatchNorm statistics aside)


def test_resume_restores_adapters_and_schedule(tiny_data, trained_teacher, tmp_path):
    from ultralytics import YOLO

    class Stop(Exception):
        pass

    def stop_after_first_epoch(trainer):
        if trainer.epoch == 0:
            raise Stop

    model = YOLO("yolov8n.yaml")
    model.add_callback("on_model_save", stop_after_first_epoch)
    with pytest.raises(Stop):
        model.train(trainer=GISMTrainer, data=str(tiny_data), teacher=str(trained_teacher), epochs=3,
                    project=str(tmp_path), name="r", kd_warmup=0, kd_ramp=0, temperature=3.0, adapter="mlp",
                    feat_norm="raw", **FAST)
    last = tmp_path / "r" / "weights" / "last.pt"
    saved = torch.load(last.parent / "gism_last.pt", weights_only=True)
    assert saved["config"]["temperature"] == 3.0

    trainer = GISMTrainer(overrides={"resume": str(last), "model": str(last)})
    assert trainer.gism.temperature == 3.0 and trainer.gism.teacher == str(trained_teacher)
    assert trainer.gism.adapter == "mlp" and trainer.gism.feat_norm == "raw"
    trainer.model = str(last)
    trainer._setup_train()
    assert sorted(trainer.adapters.state_dict()) == sorted(saved["adapters"])  # conv, ReLU, conv per level
    assert {k.split(".")[1] for k in saved["adapters"]} == {"0", "2"}
    for k, v in saved["adapters"].items():
        torch.testing.assert_close(trainer.adapters.state_dict()[k].cpu(), v)
    assert trainer.start_epoch == 1
    trainer.train()
    rows = _rows(tmp_path / "r" / "results.csv")
    assert [int(float(r["epoch"])) for r in rows] == [1, 2, 3]
    assert all(float(r["train/kdcls_loss"]) > 0 for r in rows)


def test_non_finite_feature_level_is_named(tiny_data, trained_teacher, tmp_path):
    def inf_level_1(preds):
        feats = list(preds["feats"])
        feats[1] = feats[1] * float("inf")
        preds["feats"] = feats
        return preds

    trainer = _trainer_with_corrupted_teacher(tiny_data, trained_teacher, tmp_path, inf_level_1)
    loss, items = trainer.model(trainer.preprocess_batch(next(iter(trainer.train_loader))))
    assert torch.isfinite(loss).all() and float(items["feat_loss"]) >= 0
    assert "feature term at level(s) [1]" in trainer.gism_criterion.problem


def test_terms_follow_the_formula_with_lambda_alpha_feat_gain_and_cls_gain(tiny_data, trained_teacher, tmp_path):
    """feat = lam (1 - alpha) gamma F, cls = lam beta C, box = lam alpha X, cross = lam K; same student, teacher and
    batch each time."""
    trainer = _trainer(tiny_data, trained_teacher, tmp_path, kd_warmup=0, kd_ramp=0, level_weighting="fixed")
    trainer._setup_train()
    trainer.epoch = 1
    trainer._model_train()
    crit = trainer.gism_criterion
    batch = trainer.preprocess_batch(next(iter(trainer.train_loader)))
    with torch.no_grad():
        student = trainer.model(batch["img"])
        teacher = crit.teacher(batch["img"])

    def terms(lam, alpha, gamma, beta=1.0):
        crit.kd_lambda, crit.cfg.alpha, crit.cfg.feat_gain, crit.cfg.cls_gain = lam, alpha, gamma, beta
        with torch.no_grad():
            return {k: float(v) for k, v in crit.terms(student, teacher, batch).items()}

    unit = terms(1.0, 0.0, 1.0)  # F and C; box is off at alpha 0
    box = terms(1.0, 1.0, 1.0)["box"]  # X
    assert unit["box"] == 0 and box > 0 and unit["feat"] > 0 and unit["cls"] > 0
    got = terms(3.0, 0.25, 2.0, beta=0.5)
    assert got["feat"] == pytest.approx(3.0 * 0.75 * 2.0 * unit["feat"], rel=1e-5)
    assert got["cls"] == pytest.approx(3.0 * 0.5 * unit["cls"], rel=1e-5)
    assert got["box"] == pytest.approx(3.0 * 0.25 * box, rel=1e-5)
    assert unit["cross"] > 0 and got["cross"] == pytest.approx(3.0 * unit["cross"], rel=1e-5)  # lambda only


def _cross_setup(tiny_data, trained_teacher, tmp_path, **kw):
    trainer = _trainer(tiny_data, trained_teacher, tmp_path, kd_warmup=0, kd_ramp=0, selection="none",
                       feature_layers="neck", **kw)
    trainer._setup_train()
    trainer.epoch = 1
    trainer._model_train()
    batch = trainer.preprocess_batch(next(iter(trainer.train_loader)))
    return trainer, trainer.gism_criterion, batch


def test_cross_term_is_teacher_head_on_adapted_maps_against_the_teacher_written_out(tiny_data, trained_teacher,
                                                                                     tmp_path):
    trainer, crit, batch = _cross_setup(tiny_data, trained_teacher, tmp_path, teacher_dtype="fp32")
    with torch.no_grad():
        student = trainer.model(batch["img"])
        teacher = crit.teacher(batch["img"])
        adapted, _ = crit.adapted_maps(student, teacher)
        got = float(crit.cross_term(adapted, teacher, torch.ones(student["scores"].shape[0], student["scores"].shape[2])))
        cross = crit.teacher.model.model[-1].forward_head(adapted, **crit.teacher.model.model[-1].one2many)
    T, reg_max = crit.cfg.temperature, crit.teacher_reg_max
    p_t, p_c = torch.sigmoid(teacher["scores"] / T), torch.sigmoid(cross["scores"] / T)  # (B, C, A)
    kl_cls = (p_t * torch.log(p_t / p_c) + (1 - p_t) * torch.log((1 - p_t) / (1 - p_c))).sum(1)  # (B, A)
    b, _, a = teacher["boxes"].shape
    q_t = torch.softmax(teacher["boxes"].view(b, 4, reg_max, a) / T, 2)
    q_c = torch.softmax(cross["boxes"].view(b, 4, reg_max, a) / T, 2)
    kl_box = (q_t * torch.log(q_t / q_c)).sum(2).mean(1)  # (B, A): bins summed, edges averaged
    expected = T**2 * kl_cls.mean() + T**2 * kl_box.mean()  # selection none: plain means over all anchors
    assert got == pytest.approx(float(expected), rel=1e-4)
    # the teacher's head on the teacher's own maps reproduces the teacher: nothing left to distil
    assert float(crit.cross_term(teacher["feats"], teacher, torch.ones(b, a))) == pytest.approx(0.0, abs=1e-5)


def test_cross_term_trains_student_features_never_its_head_nor_the_teacher(tiny_data, trained_teacher, tmp_path):
    trainer, crit, batch = _cross_setup(tiny_data, trained_teacher, tmp_path, kd_feat=False, kd_cls=False,
                                        kd_box=False, kd_cross=True)
    student = trainer.model(batch["img"])
    teacher = crit.teacher(batch["img"])
    terms = crit.terms(student, teacher, batch)
    assert [float(terms[k].detach()) for k in ("feat", "cls", "box")] == [0, 0, 0] and float(terms["cross"].detach()) > 0
    terms["cross"].backward()
    head = trainer.model.model[-1]
    head_grad = sum(float(p.grad.abs().sum()) for p in head.parameters() if p.grad is not None)
    body_grad = sum(float(p.grad.abs().sum()) for m in trainer.model.model[:-1] for p in m.parameters()
                    if p.grad is not None)
    assert head_grad == 0.0 and body_grad > 0  # the student's head is left to the ground truth
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in trainer.adapters.parameters())
    assert all(p.grad is None for p in trainer.teacher.model.parameters())


def test_cwd_feature_term_is_channel_wise_kl_on_the_adapted_maps(tiny_data, trained_teacher, tmp_path):
    trainer, crit, batch = _cross_setup(tiny_data, trained_teacher, tmp_path, feat_norm="cwd", kd_cls=False,
                                        level_weighting="fixed", temperature=2.0)
    crit.kd_lambda = 1.0
    with torch.no_grad():
        student, teacher = trainer.model(batch["img"]), crit.teacher(batch["img"])
        got = float(crit.terms(student, teacher, batch)["feat"])
        adapted, t_maps = crit.adapted_maps(student, teacher)
    want = []
    for s_map, t_map in zip(adapted, t_maps):  # T^2 KL of each channel's spatial softmax, mean over channels, images
        p_t = torch.softmax(t_map.float().flatten(2) / 2.0, -1)
        log_p_s = torch.log_softmax(s_map.float().flatten(2) / 2.0, -1)
        want.append(float((4.0 * (p_t * (p_t.log() - log_p_s)).sum(-1)).mean()))
    # fixed weights: 1/levels; gamma = feat_gain scales the term
    assert got == pytest.approx((1 - crit.cfg.alpha) * crit.cfg.feat_gain * sum(want) / len(want), rel=1e-4)
