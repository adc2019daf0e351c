"""What one training iteration costs under GISM, next to what it supervises.

    YOLO_OFFLINE=1 python bench/train_overhead.py [teacher=t.pt] [student=yolov8n.yaml] [imgsz=256] [batch=16]
                                                  [rounds=5] [iters=5] [warmup=1] [device=cpu|0] [seed=0]
                                                  [out=bench/results/train_overhead.json]

Four methods, the same batches (one epoch of mosaic-augmented training batches, saved once and replayed):
  student  one iteration of Ultralytics' DetectionTrainer: preprocess_batch, forward+loss, backward,
           optimizer_step() (clip, step, zero_grad, EMA) -- the body of its training loop, driven here step by step
  teacher  the teacher forward alone as Ultralytics' built-in distillation runs it: fp32 weights, unfused, eval
           mode, torch.no_grad(), inside the loop's autocast (a no-op on CPU; fp16 autocast with AMP on CUDA)
  gism     one iteration of yolo_gism.GISMTrainer with lambda = 1 (kd_warmup=0, kd_ramp=0)
  builtin  one iteration of DetectionTrainer(distill_model=<teacher>)

Timing: one process holds all four, set up with trainer._setup_train() (trainer.train() is never called).
Each round visits the methods in a rotated order; each visit runs `warmup` discarded iterations, then `iters`
timed ones, with the clock read after torch.cuda.synchronize() on a GPU. Memory: each method alone in its own
process (peak RSS from getrusage on CPU, torch.cuda.max_memory_allocated on CUDA).
Summary: ratio_gism_vs_student_plus_teacher = gism / (student + teacher), ratio_gism_vs_builtin = gism / builtin,
from the medians (the means' ratios are stored beside them). Goal from the issue: the first ratio <= 1.10.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("YOLO_OFFLINE", "1")  # before anything imports ultralytics
CHILD_ENV = dict(os.environ)  # stage processes start from this, not from what importing ultralytics sets here

import torch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RUNS = ROOT / "bench" / "runs" / "train_overhead"
METHODS = ("student", "teacher", "gism", "builtin")
DEFAULTS = dict(teacher=None, student="yolov8n.yaml", imgsz=256, batch=16, rounds=5, iters=5, warmup=1,
                device="cpu", seed=0, train=64, val=16, out=str(ROOT / "bench" / "results" / "train_overhead.json"))
INTS = ("imgsz", "batch", "rounds", "iters", "warmup", "seed", "train", "val")


# ----- arguments, data, teacher (parent process) ------------------------------------------------
def parse_args(argv: list[str]) -> dict:
    """key=value arguments over DEFAULTS; unknown keys fail loudly so a typo never runs a wrong benchmark."""
    args = dict(DEFAULTS)
    for item in argv:
        key, sep, value = item.partition("=")
        if not sep or key not in DEFAULTS:
            raise SystemExit(f"bad argument {item!r}; expected key=value with key in {sorted(DEFAULTS)}")
        args[key] = int(value) if key in INTS else value
    if args["rounds"] < 1 or args["iters"] < 1 or args["warmup"] < 0:
        raise SystemExit("rounds and iters must be >= 1, warmup >= 0")
    return args


def prepare_data(args: dict) -> Path:
    """The built-in synthetic dataset at the benchmark's image size, generated once and reused (gitignored)."""
    from yolo_gism.data import make_dataset

    out = RUNS / f"data_{args['train']}_{args['val']}_{args['imgsz']}_s{args['seed']}"
    if not (out / "data.yaml").is_file():
        make_dataset(out, train=args["train"], val=args["val"], imgsz=args["imgsz"], seed=args["seed"], exist_ok=True)
    return out / "data.yaml"


def build_teacher(folder: Path, seed: int) -> Path:
    """An untrained yolov8l.yaml DetectionModel saved as {'model': model}: speed does not depend on weights.
    It carries the dataset's class names so that GISM maps classes one to one, as with a real matched teacher."""
    from ultralytics.nn.tasks import DetectionModel

    from yolo_gism.data import CLASS_NAMES

    torch.manual_seed(seed)
    model = DetectionModel("yolov8l.yaml", nc=len(CLASS_NAMES), verbose=False)
    model.names = dict(CLASS_NAMES)
    path = folder / "teacher_yolov8l_untrained.pt"
    torch.save({"model": model}, path)
    return path


def collect_batches(ctx: dict, path: Path) -> int:
    """Save one epoch of raw training batches (uint8 images, labels) so every process replays the same ones
    and no method's clock includes data loading."""
    import logging

    from ultralytics.models.yolo.detect import DetectionTrainer
    from ultralytics.utils import LOGGER

    level = LOGGER.level
    LOGGER.setLevel(logging.WARNING)  # this trainer only feeds batches; its set-up log is noise here
    try:
        trainer = DetectionTrainer(overrides=trainer_overrides({**ctx, "device": "cpu"}, "collect"))
        trainer._setup_train()
        batches = [batch for _, batch in zip(range(len(trainer.train_loader)), trainer.train_loader)]
    finally:
        LOGGER.setLevel(level)
    torch.save(batches, path)
    return len(batches)


# ----- the four methods (stage processes) -------------------------------------------------------
def trainer_overrides(ctx: dict, name: str, **extra) -> dict:
    """Ultralytics' defaults except what a benchmark must pin: size, batch, device, seed, no workers
    (batches are replayed), no plots or validation, run folders under bench/runs."""
    return dict(model=ctx["student"], data=ctx["data"], imgsz=ctx["imgsz"], batch=ctx["batch"], device=ctx["device"],
                seed=ctx["seed"], epochs=1, workers=0, plots=False, val=False, verbose=False, exist_ok=True,
                project=str(RUNS / "trainers"), name=name, **extra)


def clone_batch(raw: dict) -> dict:
    """A fresh copy of a raw batch, so that no iteration sees another's in-place changes."""
    return {k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in raw.items()}


class TrainStep:
    """Ultralytics' training-loop body, one iteration per step(), for any DetectionTrainer subclass. Set-up is
    the trainer's own _setup_train(); train() is never called, so nothing but the iteration is on the clock."""

    def __init__(self, trainer):
        from ultralytics.utils.torch_utils import autocast

        trainer._setup_train()
        trainer.epoch = 0
        trainer._model_train()  # GISMTrainer: teacher in eval mode, lambda(epoch 0) = 1 with kd_warmup=kd_ramp=0
        self.trainer, self.autocast = trainer, autocast
        self.device = trainer.device

    def prepare(self, raw: dict) -> dict:
        return clone_batch(raw)

    def step(self, batch: dict) -> None:
        """Same order and contexts as BaseTrainer._do_train: autocast(preprocess, forward+loss), scaled backward,
        optimizer_step (unscale, clip, step, zero_grad, EMA update). Here the optimizer steps every iteration."""
        t = self.trainer
        with self.autocast(torch.bfloat16 if t.args.amp == "bf16" else t.amp, device=t.device.type):
            batch = t.preprocess_batch(batch)
            loss, t.loss_items = t.model(batch)
            t.loss = loss.sum()
        t.scaler.scale(t.loss).backward()
        t.optimizer_step()


class TeacherForward:
    """The teacher as DistillationModel runs it: load_checkpoint (fp32, unfused), frozen, eval, no_grad, within the
    training loop's autocast. Images are normalised outside the clock (preprocess is already in the student's)."""

    def __init__(self, ctx: dict, amp: bool, device):
        from ultralytics.nn.tasks import load_checkpoint
        from ultralytics.utils.torch_utils import autocast

        model = load_checkpoint(ctx["teacher"])[0].to(device).eval()
        for p in model.parameters():
            p.requires_grad = False
        self.model, self.amp, self.device, self.autocast = model, amp, device, autocast

    def prepare(self, raw: dict):
        return raw["img"].to(self.device).float() / 255

    def step(self, img) -> None:
        with torch.no_grad(), self.autocast(self.amp, device=self.device.type):
            self.model(img)


def patch_amp_check(device: str) -> None:
    """On CUDA, Ultralytics' AMP check loads yolo26n.pt, which an offline machine lacks; the benchmark wants AMP
    on (as a user's GPU run would have it), so the check is answered 'passed' in the benchmark's own processes."""
    if device != "cpu":
        import ultralytics.engine.trainer as ultralytics_trainer

        ultralytics_trainer.check_amp = lambda model: True


def make_runners(ctx: dict, methods) -> dict:
    """Build the requested methods; the teacher-only runner takes its device and AMP from a set-up trainer when
    one exists (the same decision Ultralytics made), else from the device string."""
    from ultralytics.models.yolo.detect import DetectionTrainer
    from ultralytics.utils.torch_utils import select_device

    from yolo_gism import GISMTrainer

    patch_amp_check(ctx["device"])
    runners = {}
    for method in methods:
        if method == "student":
            runners[method] = TrainStep(DetectionTrainer(overrides=trainer_overrides(ctx, "student")))
        elif method == "gism":
            overrides = trainer_overrides(ctx, "gism", teacher=ctx["teacher"], kd_warmup=0, kd_ramp=0)
            runners[method] = TrainStep(GISMTrainer(overrides=overrides))
        elif method == "builtin":
            runners[method] = TrainStep(DetectionTrainer(overrides=trainer_overrides(
                ctx, "builtin", distill_model=ctx["teacher"])))
    if "teacher" in methods:
        trainers = [r.trainer for r in runners.values()]
        device = trainers[0].device if trainers else select_device(ctx["device"], verbose=False)
        amp = trainers[0].amp if trainers else device.type == "cuda"
        runners["teacher"] = TeacherForward(ctx, amp, device)
    return {m: runners[m] for m in methods}


def synchronize(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed_step(runner, batch) -> float:
    """Seconds for one step; the GPU queue is drained before both clock reads."""
    synchronize(runner.device)
    start = time.perf_counter()
    runner.step(batch)
    synchronize(runner.device)
    return time.perf_counter() - start


def stage_time(ctx: dict) -> dict:
    """All methods interleaved: round r visits them rotated by r, so no method always runs first or last."""
    raw = torch.load(ctx["batches"], weights_only=False)
    runners = make_runners(ctx, METHODS)
    times = {m: [] for m in METHODS}
    per_round = []
    k = 0  # batch index, shared: every method sees batch k at the same position in its block
    for r in range(ctx["rounds"]):
        order = METHODS[r % len(METHODS):] + METHODS[:r % len(METHODS)]
        this_round = {}
        for method in order:
            runner = runners[method]
            for _ in range(ctx["warmup"]):
                runner.step(runner.prepare(raw[(k - 1) % len(raw)]))
            block = [timed_step(runner, runner.prepare(raw[(k + i) % len(raw)])) for i in range(ctx["iters"])]
            times[method] += block
            this_round[method] = statistics.median(block)
        k += ctx["iters"]
        per_round.append({"order": list(order), "median_s": this_round})
    gism = runners["gism"].trainer
    return {"times_s": times, "per_round": per_round, "torch_threads": torch.get_num_threads(),
            "amp": bool(gism.amp), "gism_skipped_steps": len(getattr(gism, "skipped_steps", [])),
            "models": model_sizes(runners)}


def model_sizes(runners: dict) -> dict:
    """Parameter counts of what each method trains or runs, so a reader sees what was compared."""
    from ultralytics.utils.torch_utils import unwrap_model

    def count(module):
        return sum(p.numel() for p in module.parameters())

    builtin = unwrap_model(runners["builtin"].trainer.model)
    return {"student_params": count(unwrap_model(runners["student"].trainer.model)),
            "teacher_params": count(runners["teacher"].model),
            "gism_adapter_params": count(runners["gism"].trainer.adapters),
            "builtin_projector_params": count(builtin.projector)}


def current_rss_mib() -> float:
    with open("/proc/self/status") as f:
        kib = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
    return kib / 1024


def stage_memory(ctx: dict, method: str) -> dict:
    """One method alone: memory after setup, then the peak over warmup + iters iterations."""
    raw = torch.load(ctx["batches"], weights_only=False)
    runner = make_runners(ctx, (method,))[method]
    cuda = runner.device.type == "cuda"
    if cuda:
        torch.cuda.synchronize(runner.device)
        torch.cuda.reset_peak_memory_stats(runner.device)
        after_setup = torch.cuda.memory_allocated(runner.device) / 2**20
    else:
        after_setup = current_rss_mib()
    for i in range(max(2, ctx["warmup"] + ctx["iters"])):
        runner.step(runner.prepare(raw[i % len(raw)]))
    synchronize(runner.device)
    if cuda:
        return {"kind": "torch.cuda.max_memory_allocated (peak since after setup; weights, optimizer and EMA "
                        "included)", "after_setup_mib": after_setup,
                "peak_mib": torch.cuda.max_memory_allocated(runner.device) / 2**20}
    return {"kind": "peak RSS of the whole process, resource.getrusage(RUSAGE_SELF).ru_maxrss (setup included)",
            "after_setup_mib": after_setup, "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


# ----- orchestration, results -------------------------------------------------------------------
def run_stage(ctx_path: Path, stage: str, folder: Path) -> dict:
    """Run one stage in a fresh interpreter (its memory is its own); its log is shown only if it fails."""
    result, log = folder / f"{stage}.json", folder / f"{stage}.log"
    cmd = [sys.executable, str(Path(__file__).resolve()), f"_stage={stage}", f"_ctx={ctx_path}", f"_out={result}"]
    with open(log, "w") as f:
        done = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, cwd=ROOT, env=CHILD_ENV)
    if done.returncode:
        sys.stderr.write(log.read_text()[-6000:])
        raise SystemExit(f"stage {stage} failed (exit {done.returncode})")
    return json.loads(result.read_text())


def stats(values: list[float]) -> dict:
    return {"n": len(values), "mean_s": statistics.fmean(values), "median_s": statistics.median(values),
            "stdev_s": statistics.stdev(values) if len(values) > 1 else 0.0, "min_s": min(values),
            "max_s": max(values)}


def summarise(timing: dict, memory: dict) -> dict:
    per_method = {m: stats(timing["times_s"][m]) for m in METHODS}
    med = {m: per_method[m]["median_s"] for m in METHODS}
    mean = {m: per_method[m]["mean_s"] for m in METHODS}
    rounds = [r["median_s"] for r in timing["per_round"]]
    return {
        "ratio_basis": "medians over all timed iterations",
        "ratio_gism_vs_student_plus_teacher": med["gism"] / (med["student"] + med["teacher"]),
        "ratio_gism_vs_builtin": med["gism"] / med["builtin"],
        "ratios_from_means": {"gism_vs_student_plus_teacher": mean["gism"] / (mean["student"] + mean["teacher"]),
                              "gism_vs_builtin": mean["gism"] / mean["builtin"]},
        "ratio_gism_vs_student_plus_teacher_per_round": [r["gism"] / (r["student"] + r["teacher"]) for r in rounds],
        "goal": "ratio_gism_vs_student_plus_teacher <= 1.10",
        "goal_met": med["gism"] / (med["student"] + med["teacher"]) <= 1.10,
        "median_s": med, "mean_s": mean,
        "peak_memory_mib": {m: memory[m]["peak_mib"] for m in METHODS},
    }


def environment(ctx: dict, timing: dict) -> dict:
    import ultralytics

    from yolo_gism.cpuinfo import cpu_model

    index = ctx["device"].split(",")[0].removeprefix("cuda:")
    gpu = torch.cuda.get_device_name(int(index) if index.isdigit() else 0) if ctx["device"] != "cpu" else None
    return {"python": platform.python_version(), "torch": torch.__version__, "ultralytics": ultralytics.__version__,
            "platform": platform.platform(), "cpu": cpu_model(), "cpu_cores": os.cpu_count(),
            "torch_threads": timing["torch_threads"], "gpu": gpu, "amp": timing["amp"]}


def write_markdown(report: dict, path: Path) -> None:
    s, cfg = report["summary"], report["config"]
    rows = "\n".join(
        f"| {m} | {report['methods'][m]['what']} | {report['timing'][m]['median_s']:.3f} | "
        f"{report['timing'][m]['mean_s']:.3f} | {report['timing'][m]['n']} | {s['peak_memory_mib'][m]:.0f} |"
        for m in METHODS)
    text = (f"# Training-iteration overhead of GISM\n\n"
            f"`{report['command']}`\n\n"
            f"{report['machine']['cpu']} ({report['machine']['cpu_cores']} cores, {report['machine']['torch_threads']} "
            f"torch threads), GPU: {report['machine']['gpu'] or 'none'}; torch {report['machine']['torch']}, "
            f"ultralytics {report['machine']['ultralytics']}, python {report['machine']['python']}; AMP "
            f"{'on' if report['machine']['amp'] else 'off'}.\n"
            f"Student {cfg['student']}, teacher {cfg['teacher_desc']}; batch {cfg['batch']}, imgsz {cfg['imgsz']}, "
            f"seed {cfg['seed']}; {cfg['rounds']} rounds x {cfg['iters']} timed iterations per method "
            f"({cfg['warmup']} warm-up per visit discarded).\n\n"
            f"| method | what | median s/iter | mean s/iter | n | peak memory MiB |\n|---|---|---|---|---|---|\n"
            f"{rows}\n\n"
            f"Memory: {report['memory_kind']}; each method alone in its own process.\n"
            f"Notes: the optimizer steps every iteration here (Ultralytics accumulates to nbs=64, i.e. every "
            f"{max(round(64 / cfg['batch']), 1)} iterations at batch {cfg['batch']}); on CPU Ultralytics sets torch "
            f"threads to min(8, cores - 1).\n\n"
            f"- gism / (student + teacher) = **{s['ratio_gism_vs_student_plus_teacher']:.3f}** (medians; means "
            f"{s['ratios_from_means']['gism_vs_student_plus_teacher']:.3f}); goal <= 1.10: "
            f"{'met' if s['goal_met'] else 'not met'}\n"
            f"- gism / builtin = **{s['ratio_gism_vs_builtin']:.3f}** (means "
            f"{s['ratios_from_means']['gism_vs_builtin']:.3f})\n"
            f"- per-round gism / (student + teacher): "
            f"{', '.join(f'{r:.3f}' for r in s['ratio_gism_vs_student_plus_teacher_per_round'])}\n"
            f"- load average before / after: {report['load_average']['before']} / {report['load_average']['after']}\n")
    path.write_text(text)


WHAT = {
    "student": "DetectionTrainer iteration: preprocess_batch, forward+loss, backward, optimizer_step",
    "teacher": "teacher forward as the built-in runs it (fp32, unfused, eval, no_grad, loop autocast)",
    "gism": "GISMTrainer iteration, lambda = 1",
    "builtin": "DetectionTrainer(distill_model=teacher) iteration",
}


def main(argv: list[str]) -> None:
    args = parse_args(argv)
    load_before = [round(x, 2) for x in os.getloadavg()]
    with tempfile.TemporaryDirectory(prefix="train_overhead_") as tmp:
        folder = Path(tmp)
        ctx = {k: v for k, v in args.items() if k != "out"}
        ctx["data"] = str(prepare_data(args))
        if args["teacher"]:
            ctx["teacher_desc"] = str(args["teacher"])
        else:
            ctx["teacher"] = str(build_teacher(folder, args["seed"]))
            ctx["teacher_desc"] = "yolov8l.yaml, untrained (built by this script; speed does not depend on weights)"
        ctx["batches"] = str(folder / "batches.pt")
        ctx["n_batches"] = collect_batches(ctx, Path(ctx["batches"]))
        ctx_path = folder / "ctx.json"
        ctx_path.write_text(json.dumps(ctx))
        print(f"timing {METHODS} interleaved: {args['rounds']} rounds x {args['iters']} iterations ...", flush=True)
        timing = run_stage(ctx_path, "time", folder)
        memory = {}
        for method in METHODS:
            print(f"memory: {method} alone ...", flush=True)
            memory[method] = run_stage(ctx_path, f"memory_{method}", folder)
    report = {
        "command": "YOLO_OFFLINE=1 python bench/train_overhead.py " + " ".join(argv),
        "config": {**{k: v for k, v in ctx.items() if k not in {"batches", "data"}}, "teacher": args["teacher"],
                   "data": f"yolo_gism.data.make_dataset(train={args['train']}, val={args['val']}, "
                           f"imgsz={args['imgsz']}, seed={args['seed']})",
                   "trainer_overrides": {k: v for k, v in trainer_overrides(ctx, "<method>").items()
                                         if k not in {"data", "project"}},
                   "optimizer_step_every_iteration": True},
        "models": timing["models"],
        "machine": environment(ctx, timing),
        "load_average": {"before": load_before, "after": [round(x, 2) for x in os.getloadavg()]},
        "methods": {m: {"what": WHAT[m]} for m in METHODS},
        "summary": summarise(timing, memory),
        "timing": {m: stats(timing["times_s"][m]) for m in METHODS},
        "per_round": timing["per_round"],
        "times_s": timing["times_s"],
        "memory": memory,
        "memory_kind": memory["student"]["kind"],
        "gism_skipped_steps": timing["gism_skipped_steps"],
    }
    out = Path(args["out"])
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    write_markdown(report, out.with_suffix(".md"))
    s = report["summary"]
    print(json.dumps({k: s[k] for k in ("ratio_gism_vs_student_plus_teacher", "ratio_gism_vs_builtin", "median_s",
                                        "peak_memory_mib")}, indent=2))
    print(f"wrote {out} and {out.with_suffix('.md')}")


def stage_main(argv: list[str]) -> None:
    """Entry point of a stage process: _stage=time|memory_<method> _ctx=ctx.json _out=result.json."""
    opts = dict(a.split("=", 1) for a in argv)
    ctx = json.loads(Path(opts["_ctx"]).read_text())
    stage = opts["_stage"]
    result = stage_time(ctx) if stage == "time" else stage_memory(ctx, stage.removeprefix("memory_"))
    Path(opts["_out"]).write_text(json.dumps(result))


if __name__ == "__main__":
    if any(a.startswith("_stage=") for a in sys.argv[1:]):
        stage_main(sys.argv[1:])
    else:
        main(sys.argv[1:])
