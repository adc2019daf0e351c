"""Prove the gain: GISM vs the vanilla student, a time-matched vanilla student and Ultralytics' built-in
distillation, on the same data, schedule and seeds.

    python bench/distill_gain.py protocol=cfg/distill_gain_cpu.yaml steps=teacher,cost,main,ablations,tune,report
    python bench/distill_gain.py steps=vanilla,main      # a second process: Ultralytics trains on one
                                                        # thread on a 2-core CPU, so two runs fit side by side
    python bench/distill_gain.py steps=ablations only=ablation_feat_only,builtin_dis2   # chosen runs only
    python bench/distill_gain.py steps=main seeds=0 only=vanilla_time_matched          # (main methods too)
    python bench/distill_gain.py steps=cost              # GISM's epoch time / vanilla's, timed in turn: sets
                                                        # the time-matched vanilla's epochs
    python bench/distill_gain.py steps=tune              # `yolo-gism tune` over the protocol's T x alpha grid
    touch bench/runs/distill_gain/cpu/STOP               # processes finish their current runs, start no more
    python bench/distill_gain.py steps=teacher device=0  # the teacher on a GPU (AMP, 8 loader workers); the
                                                        # device is recorded, not part of the run's settings

Each run lives in its own folder (bench/runs/distill_gain/<protocol>/<method>/seed<k>, not committed); a
finished run's metrics.json and results.csv are copied to bench/results/distill_gain_runs/ (committed) and
skipped from then on; the teacher's best.pt is committed with its record, so every checkout distills from
the same teacher. A run with weights/last.pt is resumed, so the protocol survives interruptions and can be
spread over several sessions. `report` writes bench/results/<report>.json (the protocol's `report` key:
distill_gain.json for the default protocol), a Markdown table and a plot from whatever has finished.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from readme_block import replace_block  # noqa: E402
RUNS = ROOT / "bench" / "runs" / "distill_gain"
RESULTS = ROOT / "bench" / "results"
MAIN_METHODS = ("vanilla", "vanilla_time_matched", "builtin", "gism")


BASE_KEYS = ("data", "imgsz", "batch", "device", "train_args")  # what a protocol with `base:` always takes over


def load_protocol(path: str) -> dict:
    """A protocol file; one with `base: <other protocol file>` takes that protocol's data, image size and training
    arguments, and its teacher (the very weights) unless it names a teacher of its own. Setting one of the data or
    training keys differently is an error. The base's cost measurement is shared while teacher architecture,
    student and GISM settings are the same (a teacher's forward costs the same whatever its weights), and the
    base's finished teacher-free runs (vanilla students) are reused where their settings and seed match."""
    protocol = yaml.safe_load(Path(path).read_text())
    if "gism" in protocol:  # like an ablation: settings, a settings file (e.g. cfg/gism_v1.yaml), or a file changed
        protocol["gism"] = _ablation_settings(protocol["gism"], path)
    if "ablations" in protocol:
        protocol["ablations"] = {name: _ablation_settings(value, path) for name, value in protocol["ablations"].items()}
    teacher_source = _teacher_from(protocol, path)
    if "base" in protocol:
        base = load_protocol(str(ROOT / protocol["base"]))
        clash = [k for k in BASE_KEYS if k in protocol and protocol[k] != base.get(k)]
        if clash:
            raise ValueError(f"{path}: {', '.join(clash)} must be left to its base {protocol['base']}, whose "
                             f"data and training arguments this protocol shares")
        protocol.update({k: base[k] for k in BASE_KEYS if k in base})
        own_teacher = protocol.setdefault("teacher", base["teacher"]) != base["teacher"]
        same_cost = (protocol["teacher"]["model"] == base["teacher"]["model"]
                     and protocol["student"]["model"] == base["student"]["model"]
                     and protocol.get("gism", {}) == base.get("gism", {}))
        protocol["_home"] = base.get("_home", base["name"])
        protocol["_teacher_home"] = protocol["name"] if own_teacher else base.get("_teacher_home", base["name"])
        protocol["_cost_home"] = base.get("_cost_home", base["name"]) if same_cost else protocol["name"]
        protocol["_bases"] = [base["name"], *base.get("_bases", [])]
    if teacher_source:
        protocol["_teacher_home"] = home(teacher_source, "teacher")
    protocol["_file"] = str(path)
    _check_match_time(protocol, path)
    return protocol


def as_written(protocol: dict) -> dict:
    """The protocol file's own keys (not those taken from its base), with ablation settings files read in; the
    ablations as the file writes them too (`ablations_as_written`), for the report's short account of each."""
    written = yaml.safe_load(Path(protocol["_file"]).read_text())
    if "ablations" not in written:
        return written
    return {**written, "ablations": protocol["ablations"], "ablations_as_written": written["ablations"]}


def _ablation_settings(value: str | dict, path) -> dict:
    """An ablation's GISM settings: a dict of them, a settings file's name, or `{settings: <file>, key: value, ...}`,
    that file with some of its keys changed (a variation on a recipe without writing the recipe out again)."""
    if isinstance(value, str):
        return _settings_file(value, path)
    if "settings" in value:
        return {**_settings_file(value["settings"], path), **{k: v for k, v in value.items() if k != "settings"}}
    return value


def _settings_file(name: str, path) -> dict:
    """An ablation given as a GISM settings file (one a user passes as `gism=`, e.g. cfg/gism_builtin_features.yaml)
    runs exactly those settings, so the file and the runs that measured it cannot drift apart."""
    file = ROOT / name
    if not file.is_file():
        raise FileNotFoundError(f"{path}: ablation settings file {name} not found")
    return yaml.safe_load(file.read_text()) or {}


def _teacher_from(protocol: dict, path) -> dict | None:
    """`teacher_from: <other protocol file>`: distil from that protocol's finished teacher (the very weights, its
    record and its mAP), trained on that protocol's data, which may be more than this protocol's students get:
    the usual case of a teacher that knows more than the student's data. Returns the other protocol."""
    if "teacher_from" not in protocol:
        return None
    if "teacher" in protocol:
        raise ValueError(f"{path}: give either teacher (trained by this protocol) or teacher_from (another "
                         f"protocol's teacher), not both")
    source = load_protocol(str(ROOT / protocol["teacher_from"]))
    protocol["teacher"] = dict(source["teacher"])
    protocol["_teacher_data"] = source["data"]  # what the teacher was trained on, for the report
    return source


def on_device(protocol: dict, device: str) -> dict:
    """The protocol with its teacher trained on another device (`steps=teacher device=0`: on a GPU when one is
    lent), with AMP and loader workers as Ultralytics uses them there. The device is not part of a run's settings,
    so a teacher trained on a GPU is the protocol's teacher; its metrics.json says where it was trained."""
    gpu = str(device) != "cpu"
    train_args = {**protocol.get("train_args", {}), "amp": gpu, "workers": 8 if gpu else 0}
    return {**protocol, "device": device, "train_args": train_args, "_device": str(device)}


def _check_match_time(protocol: dict, path) -> None:
    """`match_time` is run by steps=ablations, so it may name only the ablations and built-in dis runs; GISM already
    has its time-matched run among the main methods (`vanilla_time_matched`)."""
    allowed = [f"ablation_{name}" for name in protocol.get("ablations", {})]
    allowed += [f"builtin_dis{dis:g}" for dis in protocol.get("builtin_sweep", [])]
    wrong = [m for m in protocol.get("match_time", []) if m not in allowed]
    if wrong:
        raise ValueError(f"{path}: match_time names {wrong}, which steps=ablations never runs; it may name "
                         f"{allowed or 'the ablations and builtin_sweep runs, and this protocol has none'} "
                         f"(gism's time-matched run is the main method vanilla_time_matched)")


def home(protocol: dict, method: str | None = None) -> str:
    """Folder name of the protocol that owns a run: with a base, the base's for the data (method None), and for
    the teacher and the cost measurement (`cost`, `cost/...`) when they are shared; the protocol's own for
    everything else."""
    if method is None:
        return protocol.get("_home", protocol["name"])
    if method == "teacher":
        return protocol.get("_teacher_home", protocol["name"])
    if method == "cost" or method.startswith("cost/"):
        return protocol.get("_cost_home", protocol["name"])
    return protocol["name"]


def run_dir(protocol: dict, method: str, seed: int) -> Path:
    return RUNS / home(protocol, method) / method / f"seed{seed}"


def record_dir(protocol: dict, method: str, seed: int) -> Path:
    """Committed record of a finished run (metrics.json, results.csv): bench/runs/ is not in git, so this is what
    lets a later checkout skip runs that already finished somewhere else."""
    return RESULTS / "distill_gain_runs" / home(protocol, method) / method / f"seed{seed}"


def finished_metrics(protocol: dict, method: str, seed: int) -> Path | None:
    """metrics.json of a finished run, local or committed. The teacher also needs its weights here."""
    local = run_dir(protocol, method, seed) / "metrics.json"
    if local.exists():
        return local
    record = record_dir(protocol, method, seed) / "metrics.json"
    if record.exists() and (method != "teacher" or teacher_path(protocol).exists()):
        return record
    return None


def keep_record(protocol: dict, method: str, seed: int) -> None:
    import shutil

    target = record_dir(protocol, method, seed)
    target.mkdir(parents=True, exist_ok=True)
    names = ["metrics.json", "results.csv", "args.yaml"] + (["weights/best.pt"] if method == "teacher" else [])
    for name in names:
        source = run_dir(protocol, method, seed) / name
        if source.exists():
            shutil.copy2(source, target / Path(name).name)


def dataset(protocol: dict) -> Path:
    """The protocol's data.yaml, generating the built-in traffic data once."""
    spec = protocol["data"]
    if spec.get("source", "builtin") != "builtin":
        return Path(spec["source"])
    out = RUNS / home(protocol) / f"data_{spec['train']}_{spec['val']}_{spec['imgsz']}_{spec['seed']}"
    out.parent.mkdir(parents=True, exist_ok=True)
    while not (out / "data.yaml").exists():  # data.yaml is written last, so it marks a complete dataset
        if not _claim(out):  # protocol processes started together (one per core): one generates, the rest wait
            time.sleep(1)
            continue
        try:
            if not (out / "data.yaml").exists():
                from yolo_gism.data import make_dataset

                make_dataset(out, train=spec["train"], val=spec["val"], imgsz=spec["imgsz"], seed=spec["seed"],
                             exist_ok=True)
        finally:
            _release(out)
    return out / "data.yaml"


def _resolved_gism(values: dict) -> dict:
    """GISM settings as a run uses them: every key, the current defaults filled in, the teacher path left out."""
    from yolo_gism.config import GISMConfig

    gism = GISMConfig.from_dict({k: v for k, v in values.items() if k != "teacher"}).to_dict()
    gism.pop("teacher")
    return json.loads(json.dumps(gism))


def settings(spec: dict) -> dict:
    """What a run is trained with, paths left out: for GISM runs the fully resolved GISM config, so that a
    changed default in cfg/gism.yaml makes the old record stale instead of silently counting as the new one."""
    out = {k: v for k, v in spec.items() if k not in ("teacher", "distill_model", "threads")}
    if spec.get("kind") == "gism":
        from yolo_gism.config import GISMConfig

        keys = set(GISMConfig.keys())
        out = {**{k: v for k, v in out.items() if k not in keys},
               "gism": _resolved_gism({k: v for k, v in out.items() if k in keys})}
    return json.loads(json.dumps(out))


# GISM keys added after runs were first recorded, each with the value the runs recorded before it existed behaved as
# (offline_target: those runs all had offline off, where no offline target is used). A record that lacks a key is
# read with this value, not the key's current default: were that default changed, the record would go stale rather
# than pass for a run of the new one. A key added to GISMConfig from now on belongs here too (a test checks).
VALUE_BEFORE_KEY_EXISTED = {"feat_gain": 1.0, "cls_gain": 1.0, "kd_every": 1, "kd_cross": False,
                            "feature_layers": "neck", "offline": False, "offline_target": "aligned"}


def gism_as_it_ran(stored: dict) -> dict:
    """GISM settings stored by a run (in its record or beside its checkpoint), resolved with each key it lacks at
    the value the run behaved as without it, not at that key's current default."""
    return _resolved_gism({**VALUE_BEFORE_KEY_EXISTED, **stored})


def recorded_settings(record: dict) -> dict | None:
    """A record's settings, with GISM keys added since it was trained filled in as it ran without them; a changed
    default of an existing key still shows, as it was stored."""
    stored = record.get("settings")
    if stored is None or "gism" not in stored:
        return stored
    return {**stored, "gism": gism_as_it_ran(stored["gism"])}


def is_current(record: dict, spec: dict) -> bool:
    """A record matches the protocol's run if its epochs and settings do (records from before settings were
    stored are taken as they are)."""
    if record.get("epochs") != spec["epochs"]:
        return False
    return "settings" not in record or recorded_settings(record) == settings(spec)


# ----- one training run, in its own process ----------------------------------------------------
def train_one(protocol: dict, method: str, seed: int, extra: dict) -> None:
    """Train (or resume) one run and write its metrics.json; called in a subprocess by `ensure`."""
    from ultralytics import YOLO

    from yolo_gism import GISMTrainer
    from yolo_gism.evaluate import detailed_metrics

    folder = run_dir(protocol, method, seed)
    data = dataset(protocol)
    last = folder / "weights" / "last.pt"
    trained_with = settings(extra)
    kind = extra.pop("kind")
    epochs = extra.pop("epochs")
    threads = extra.pop("threads", None)
    common = dict(data=str(data), epochs=epochs, imgsz=protocol["imgsz"], batch=protocol["batch"],
                  device=protocol["device"], seed=seed, project=str(folder.parent), name=folder.name,
                  exist_ok=True, **protocol.get("train_args", {}))
    started = time.time()
    if last.exists() and not _finished(last) and not _resumable(folder, trained_with):
        print(f"[distill_gain] {method} seed {seed}: interrupted run had other GISM settings; starting over")
        last.unlink()
    if last.exists() and not _finished(last):
        model = YOLO(str(last))
        _use_threads(model, threads)
        model.train(resume=True, **({"trainer": GISMTrainer} if kind == "gism" else {}))
    elif not last.exists():
        model = YOLO(extra.pop("model"))
        _use_threads(model, threads)
        if kind == "gism":
            model.train(trainer=GISMTrainer, **common, **extra)
        else:
            model.train(**common, **extra)
    metrics = detailed_metrics(folder / "weights" / "best.pt", data, protocol["imgsz"])
    metrics.update(_curve(folder / "results.csv"), method=method, seed=seed, epochs=epochs,
                   wall_seconds_this_call=round(time.time() - started, 1), settings=trained_with,
                   device=_device_name(protocol["device"]))
    (folder / "metrics.json").write_text(json.dumps(metrics, indent=2))


def _device_name(device) -> str:
    """Where a run trained, for its record: the device as given, with the GPU's name for a CUDA index."""
    import torch

    first = str(device).split(",")[0].removeprefix("cuda:")
    if not first.isdigit() or not torch.cuda.is_available():
        return str(device)
    return f"cuda:{first} ({torch.cuda.get_device_name(int(first))})"


def _use_threads(model, threads: int | None) -> None:
    """Let one run use more than the single thread Ultralytics gives CPU training on a 2-core machine.

    Used for the teacher only: it is on every distillation run's critical path, while the students are
    compared with each other at one thread each, two runs side by side.
    """
    if threads:
        import torch

        model.add_callback("on_pretrain_routine_end", lambda trainer: torch.set_num_threads(threads))


def _resumable(folder: Path, trained_with: dict) -> bool:
    """An interrupted GISM run resumes with the config saved beside its checkpoint: only if that is still ours
    (a key the saved config lacks is read as the run behaved without it, as for records)."""
    import torch

    state = folder / "weights" / "gism_last.pt"
    if "gism" not in trained_with or not state.exists():
        return True
    saved = torch.load(state, map_location="cpu", weights_only=True)["config"]
    return gism_as_it_ran(saved) == trained_with["gism"]


def _finished(last: Path) -> bool:
    import torch

    ckpt = torch.load(last, map_location="cpu", weights_only=False)
    return ckpt.get("optimizer") is None  # Ultralytics strips the optimizer when a run completes


def _curve(results_csv: Path) -> dict:
    """Validation curve and epoch time from Ultralytics' results.csv."""
    import csv

    with open(results_csv) as f:
        rows = [{k.strip(): v for k, v in r.items()} for r in csv.DictReader(f)]
    curve = [float(r["metrics/mAP50-95(B)"]) for r in rows]
    return {
        "curve_map50_95": curve,
        "gain_last_tenth": gain_last_tenth(curve),
        "epoch_seconds": training_seconds([float(r["time"]) for r in rows]) / len(rows),
    }


def gain_last_tenth(curve: list[float], window: int = 5) -> float | None:
    """How much the curve rose over its last tenth of epochs: the mean of its last `window` epochs minus the mean
    of the `window` epochs ending a tenth earlier (the window shrinks to the tenth on short curves). Single
    epochs differ by +-0.2 points from one to the next, which alone could flip the convergence verdict."""
    tenth = max(1, len(curve) // 10)
    width = min(window, tenth)
    if len(curve) < tenth + width:
        return None
    end = len(curve) - tenth
    return statistics.mean(curve[-width:]) - statistics.mean(curve[end - width:end])


def training_seconds(times: list[float]) -> float:
    """Total training time from results.csv's `time` column, which counts from the start of the latest
    (re)start: a resumed run's clock starts again at zero, so each restart begins a new segment to add."""
    total, previous = 0.0, 0.0
    for t in times:
        total += t - previous if t >= previous else t
        previous = t
    return total


def _claim(folder: Path) -> bool:
    """Take the run's lock so that two protocol processes (e.g. one per core) never train the same run."""
    lock = folder.parent / f".{folder.name}.lock"
    try:
        fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        pid = int(lock.read_text() or 0)
        try:
            os.kill(pid, 0)
            return False  # another live process is training it
        except (ProcessLookupError, ValueError):
            lock.unlink(missing_ok=True)  # stale lock of a process that died
            return _claim(folder)
    os.write(fd, str(os.getpid()).encode())
    os.close(fd)
    return True


def _release(folder: Path) -> None:
    (folder.parent / f".{folder.name}.lock").unlink(missing_ok=True)


def identical_record(protocol: dict, spec: dict, seed: int) -> Path | None:
    """A committed record of another method trained with exactly these settings and seed (e.g. the ablation
    that a changed GISM default turned into the defaults), so that the same run is never trained twice. A
    teacher-free run is also looked for in the base protocols, which share data and training arguments."""
    want = settings(spec)
    teacher_free = spec.get("kind") == "plain" and "distill_model" not in spec
    for name in [protocol["name"], *(protocol.get("_bases", []) if teacher_free else [])]:
        for done in sorted((RESULTS / "distill_gain_runs" / name).glob(f"*/seed{seed}/metrics.json")):
            if recorded_settings(json.loads(done.read_text())) == want:
                return done.parent
    return None


def reuse_record(protocol: dict, method: str, seed: int, twin: Path) -> dict:
    import shutil

    target = record_dir(protocol, method, seed)
    target.mkdir(parents=True, exist_ok=True)
    for name in ("results.csv", "args.yaml"):
        if (twin / name).exists():
            shutil.copy2(twin / name, target / name)
    metrics = {**json.loads((twin / "metrics.json").read_text()), "method": method,
               "reused_from": str(twin.relative_to(RESULTS))}
    (target / "metrics.json").write_text(json.dumps(metrics, indent=2))
    print(f"[distill_gain] {method} seed {seed}: same settings and seed as {twin.relative_to(RESULTS)}; reused", flush=True)
    return metrics


def stop_file(protocol: dict) -> Path:
    """While this file exists, protocol processes finish the runs they are on and start no others."""
    return RUNS / protocol["name"] / "STOP"


def ensure(protocol: dict, method: str, seed: int, spec: dict) -> dict | None:
    """Run one method/seed unless finished (or being trained by another process); returns its metrics."""
    folder = run_dir(protocol, method, seed)
    done = finished_metrics(protocol, method, seed) or folder / "metrics.json"
    if done.exists() and not is_current(json.loads(done.read_text()), spec):
        print(f"[distill_gain] {method} seed {seed}: recorded run had other epochs or settings than the "
              f"protocol; redoing")
        done = folder / "metrics.json"
        if done.exists():
            done.unlink()
        for stale in (folder / "weights" / "last.pt", folder / "results.csv"):  # never resume the old settings
            stale.unlink(missing_ok=True)
    if not done.exists() and method != "teacher":
        twin = identical_record(protocol, spec, seed)
        if twin is not None:
            return reuse_record(protocol, method, seed, twin)
    if not done.exists():
        if stop_file(protocol).exists():
            print(f"[distill_gain] {method} seed {seed}: {stop_file(protocol)} exists, starting no new run", flush=True)
            return None
        folder.parent.mkdir(parents=True, exist_ok=True)
        if not _claim(folder):
            print(f"[distill_gain] {method} seed {seed}: another process is on it, skipping", flush=True)
            return None
        try:
            print(f"[distill_gain] {method} seed {seed} -> {folder}", flush=True)
            payload = json.dumps({"protocol": protocol["_file"], "method": method, "seed": seed, "spec": spec,
                                  "device": protocol.get("_device")})
            result = subprocess.run([sys.executable, __file__, "_one", payload], cwd=ROOT)
        finally:
            _release(folder)
        if result.returncode != 0 or not done.exists():
            print(f"[distill_gain] {method} seed {seed} FAILED (exit {result.returncode})", flush=True)
            return None
    if done == folder / "metrics.json":
        keep_record(protocol, method, seed)  # also for a run whose protocol process was stopped before copying
    return json.loads(done.read_text())


def teacher_path(protocol: dict) -> Path:
    """The teacher's weights: the local run's, else the committed copy beside its record, so that every later
    checkout distills from the very same teacher instead of retraining a slightly different one."""
    seed = protocol["teacher"].get("seed", 0)
    local = run_dir(protocol, "teacher", seed) / "weights" / "best.pt"
    committed = record_dir(protocol, "teacher", seed) / "best.pt"
    return committed if committed.exists() and not local.exists() else local


def specs(protocol: dict) -> dict[str, dict]:
    """Every run of the protocol: its methods, and a vanilla run given the time of each method in `match_time`."""
    out = method_specs(protocol)
    for method in protocol.get("match_time", []):  # a vanilla run given that method's time, once its cost is measured
        ratio = cost_ratio(protocol, method)
        if ratio:
            out[matched_name(method)] = {**out["vanilla"], "epochs": round(protocol["student"]["epochs"] * ratio)}
    return out


def method_specs(protocol: dict) -> dict[str, dict]:
    """The protocol's teacher, vanilla student, built-in runs, GISM and its ablations (no time-matched runs)."""
    student, teacher = protocol["student"], str(teacher_path(protocol))
    base = {"model": student["model"], "epochs": student["epochs"]}
    out = {
        "teacher": {"kind": "plain", "model": protocol["teacher"]["model"], "epochs": protocol["teacher"]["epochs"],
                    "threads": protocol["teacher"].get("threads")},
        "vanilla": {"kind": "plain", **base},
        "builtin": {"kind": "plain", **base, "distill_model": teacher, **protocol.get("builtin", {})},
        "gism": {"kind": "gism", **base, "teacher": teacher, **protocol.get("gism", {})},
    }
    for dis in protocol.get("builtin_sweep", []):
        out[f"builtin_dis{dis:g}"] = {**out["builtin"], "dis": dis}
    for name, overrides in protocol.get("ablations", {}).items():
        out[f"ablation_{name}"] = {**out["gism"], **overrides}
    return out


def matched_name(method: str) -> str:
    """The vanilla run given `method`'s wall-clock time (protocol key `match_time`)."""
    return f"vanilla_time_matched_{method.removeprefix('ablation_')}"


def cost_ratio(protocol: dict, method: str) -> float | None:
    """A method's epoch time in vanilla epochs from the protocol's cost measurement (steps=cost); None if never
    measured. The protocol's `cost_as` names, for a method that computes exactly what another does (e.g. the same
    kd_every at another kd_gain), the measured method it costs the same as. An entry among `methods` (timed
    beside the protocol's other methods, under the same load) comes before the `gism_vs_vanilla` of the first
    measurement, which set the main time-matched run's epochs."""
    cost = json.loads(cost_file(protocol).read_text()) if cost_file(protocol).exists() else {}
    timed = protocol.get("cost_as", {}).get(method, method)
    entry = cost.get("methods", {}).get(timed, {})
    measured = entry.get("vs_vanilla") if timed_as_now(entry, method_specs(protocol).get(timed)) else None
    ratio = gism_cost(protocol) if measured is None and timed == "gism" else measured
    return ratio and without_teacher_at_the_end(method_specs(protocol).get(method, {}), ratio)


def timed_as_now(entry: dict, spec: dict | None) -> bool:
    """Whether a cost entry among `methods` timed the settings its method has now. The epochs are left out (an
    epoch costs the same however many follow, so protocols of other lengths share a timing), and an entry from
    before settings were stored, or for a method this protocol does not define, is taken as it is."""
    if not entry.get("settings") or spec is None:
        return True
    ran = recorded_settings({"settings": entry["settings"]})
    return {**ran, "epochs": None} == {**settings(spec), "epochs": None}


def settings_tag(values: dict) -> str:
    """Short hash of a method's settings: the folder of its cost runs, fresh for each settings timed."""
    return hashlib.sha1(json.dumps(values, sort_keys=True).encode()).hexdigest()[:8]


def without_teacher_at_the_end(spec: dict, ratio: float) -> float:
    """The mean epoch cost of a GISM run whose last kd_stop epochs train without the teacher (one vanilla epoch
    each), from the cost of an epoch with it; `ratio` itself for every other run."""
    if spec.get("kind") != "gism":
        return ratio
    stop = min(settings(spec)["gism"]["kd_stop"], spec["epochs"])
    return ratio - (ratio - 1) * stop / spec["epochs"]  # each teacher-free epoch saves the teacher's share


def _epoch_seconds(protocol: dict, method: str) -> float | None:
    """Mean epoch time of a method's finished runs, leaving out runs timed on a heavily shared machine."""
    times = []
    for seed in protocol["seeds"]:
        done = finished_metrics(protocol, method, seed)
        metrics = json.loads(done.read_text()) if done else {}
        if "epoch_seconds" in metrics and "epoch_seconds_note" not in metrics:
            times.append(metrics["epoch_seconds"])
    return statistics.mean(times) if times else None


COST_ORDER = ("vanilla", "gism", "gism", "vanilla")  # as recorded in cost.json; see _time_in_turn
# what a cost.json holds of its GISM timing (the rest, `methods`, times other methods)
GISM_TIMING_KEYS = ("gism_vs_vanilla", "gism_settings", "epoch_seconds", "order", "command", "created", "environment")


def cost_file(protocol: dict) -> Path:
    return RESULTS / "distill_gain_runs" / home(protocol, "cost") / "cost.json"


def gism_cost(protocol: dict) -> float | None:
    """GISM's epoch time in vanilla epochs, if the protocol's cost measurement timed the GISM settings it has now
    (a measurement from before the settings were stored with it is taken as it is): after a change of GISM's
    defaults, the vanilla run given GISM's time must wait for `steps=cost` to time the new ones."""
    cost = json.loads(cost_file(protocol).read_text()) if cost_file(protocol).exists() else {}
    timed = cost.get("gism_settings")
    if "gism_vs_vanilla" not in cost or (timed is not None and timed != settings(method_specs(protocol)["gism"])):
        return None
    return cost["gism_vs_vanilla"]


def time_matched_epochs(protocol: dict) -> int | None:
    """Epochs the vanilla student gets for the GISM run's wall-clock time.

    From the protocol's cost measurement when there is one (`steps=cost`: GISM and vanilla timed in turn, in one
    process, so both saw the same machine); else from the mean epoch times of finished runs, which is only fair
    when those ran under the same load, as in the first protocol."""
    epochs = protocol["student"]["epochs"]
    if cost_file(protocol).exists():
        ratio = gism_cost(protocol)
        if ratio is None:
            return None
        gism = settings(method_specs(protocol)["gism"])["gism"]
        # epochs without the teacher (assign=teacher runs it from the first batch)
        warmup = 0 if gism.get("assign") == "teacher" else min(gism["kd_warmup"], epochs)
        return round(warmup + (epochs - warmup) * ratio)
    vanilla, gism = _epoch_seconds(protocol, "vanilla"), _epoch_seconds(protocol, "gism")
    if not (vanilla and gism):
        return None
    return round(epochs * gism / vanilla)


def step_cost(protocol, command: str) -> dict:
    """Measure GISM's epoch time relative to the vanilla student's for the time-matched run, and that of each
    method in the protocol's `cost_methods` (e.g. the built-in, or an ablation that runs the teacher less often)
    for the budget comparison of bench/gain_frontier.py.

    Epoch times of the full runs are no good for this: they come from different sessions, on a machine whose speed
    has varied threefold between sessions. Here short runs of each (`cost_epochs`, distilling from the first
    epoch) alternate with vanilla runs in one process, so both are timed under the same conditions. Methods
    already measured are kept; only missing ones are timed, and GISM or a method again once its settings have
    changed (the old timing kept under superseded_gism or superseded_methods)."""
    out = cost_file(protocol)
    cost = json.loads(out.read_text()) if out.exists() else {}
    timed, now = cost.get("methods", {}), specs(protocol)
    missing = [m for m in protocol.get("cost_methods", [])
               if m not in timed or not timed_as_now(timed[m], now.get(m))]
    gism_timed = gism_cost(protocol) is not None
    if (gism_timed and not missing) or not teacher_ready(protocol, "cost"):
        return cost
    epochs = cost.get("cost_epochs", protocol.get("cost_epochs", 2))
    if not gism_timed:  # never timed, or timed with other GISM settings: those are kept under superseded_gism
        old = {k: cost.pop(k) for k in GISM_TIMING_KEYS if k in cost}
        if "gism_vs_vanilla" in old:
            cost.setdefault("superseded_gism", []).append(old)
        gism = settings(method_specs(protocol)["gism"])
        runs_at = f"cost/gism_{settings_tag(gism)}"  # all four runs fresh for each settings timed
        seconds = _time_in_turn(protocol, "gism", epochs, folder=lambda i, m: f"{runs_at}/{i}_{m}")
        cost.update({"gism_vs_vanilla": statistics.mean(seconds["gism"]) / statistics.mean(seconds["vanilla"]),
                     "gism_settings": gism, "epoch_seconds": seconds,
                     "order": list(COST_ORDER), "cost_epochs": epochs, **_stamp(command)})
        print(f"[distill_gain] GISM epoch = {cost['gism_vs_vanilla']:.3f} x vanilla epoch ({out})", flush=True)
    for method in missing:
        if method in cost.get("methods", {}):  # timed with other settings: kept, and timed afresh in new folders
            cost.setdefault("superseded_methods", {}).setdefault(method, []).append(cost["methods"].pop(method))
        ran = settings(now[method])
        runs_at = f"cost/{method}_{settings_tag(ran)}"
        seconds = _time_in_turn(protocol, method, epochs, folder=lambda i, m: f"{runs_at}/{i}_{m}")
        cost.setdefault("methods", {})[method] = {
            "vs_vanilla": statistics.mean(seconds[method]) / statistics.mean(seconds["vanilla"]),
            "epoch_seconds": seconds, "settings": ran, **_stamp(command)}
        print(f"[distill_gain] {method} epoch = {cost['methods'][method]['vs_vanilla']:.3f} x vanilla epoch",
              flush=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(cost, indent=2) + "\n")
    return cost


def _time_in_turn(protocol, method: str, epochs: int, folder) -> dict[str, list[float]]:
    """Epoch seconds of short vanilla and `method` runs in the order vanilla, method, method, vanilla (ABBA: a
    steady drift of the machine's speed cancels out); `folder(i, name)` names each run (finished ones are kept)."""
    s, seconds = specs(protocol), {"vanilla": [], method: []}
    for i, name in enumerate(("vanilla", method, method, "vanilla")):
        spec = {**s[name], "epochs": epochs, **({"kd_warmup": 0, "kd_stop": 0} if s[name]["kind"] == "gism" else {})}
        run = folder(i, name)
        done = run_dir(protocol, run, 0) / "metrics.json"
        if not done.exists():
            print(f"[distill_gain] cost {i + 1}/4: {name}, {epochs} epochs -> {done.parent}", flush=True)
            payload = json.dumps({"protocol": protocol["_file"], "method": run, "seed": 0, "spec": spec})
            subprocess.run([sys.executable, __file__, "_one", payload], cwd=ROOT, check=True)
        seconds[name].append(json.loads(done.read_text())["epoch_seconds"])
    return seconds


def _stamp(command: str) -> dict:
    return {"command": command, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "environment": environment()}


# ----- steps -----------------------------------------------------------------------------------
def step_teacher(protocol):
    seed = protocol["teacher"].get("seed", 0)
    if "teacher_from" in protocol and finished_metrics(protocol, "teacher", seed) is None:
        raise RuntimeError(f"the teacher comes from {protocol['teacher_from']} and is trained on that protocol's "
                           f"data: run steps=teacher with protocol={protocol['teacher_from']}")
    ensure(protocol, "teacher", seed, specs(protocol)["teacher"])


def step_vanilla(protocol, seeds):
    """The teacher-free runs: a second process can train these while the first trains the teacher."""
    for seed in seeds:
        ensure(protocol, "vanilla", seed, specs(protocol)["vanilla"])


def teacher_ready(protocol, step: str) -> bool:
    ready = finished_metrics(protocol, "teacher", protocol["teacher"].get("seed", 0)) is not None
    if not ready:
        print(f"[distill_gain] {step}: the teacher has not finished yet, so its distillation runs wait", flush=True)
    return ready


def step_main(protocol, seeds, only: list[str] | None = None):
    s = specs(protocol)
    wanted = lambda method: only is None or method in only  # noqa: E731
    ready = teacher_ready(protocol, "main")
    for seed in seeds:
        for method in ("vanilla", "gism", "builtin") if ready else ("vanilla",):
            if wanted(method):
                ensure(protocol, method, seed, s[method])
        epochs = time_matched_epochs(protocol)  # per seed: without a cost file it needs a finished GISM run's times
        if epochs and wanted("vanilla_time_matched"):
            ensure(protocol, "vanilla_time_matched", seed, {**s["vanilla"], "epochs": epochs})


def step_ablations(protocol, only: list[str] | None = None, seeds: list[int] | tuple[int, ...] = (0,)):
    """Ablations (seed 0 unless `seeds=` says otherwise), each followed by the vanilla run given its time where
    the protocol's `match_time` asks for one."""
    s = specs(protocol)
    if not teacher_ready(protocol, "ablations"):
        return
    # GISM's own ablations first: they say which term helps or hurts; the built-in's dis sweep comes after
    names = [n for n in s if n.startswith("ablation_")] + [n for n in s if n.startswith("builtin_dis")]
    for seed in seeds:
        for name in names:
            for run in (name, matched_name(name)):
                if run in s and (only is None or run in only):
                    ensure(protocol, run, seed, s[run])


def tune_pairs(protocol) -> list[tuple[float, float]]:
    grid = protocol.get("tune", {})
    return [(float(t), float(a)) for t in grid.get("temperatures", []) for a in grid.get("alphas", [])]


def tune_settings(protocol, pair: tuple[float, float]) -> dict:
    """What a sweep run is trained with, as stored in its record: a changed GISM default makes old records stale."""
    t, a = pair
    spec = {**specs(protocol)["gism"], "temperature": t, "alpha": a, "epochs": protocol["tune"]["epochs"]}
    return settings(spec)


def step_tune(protocol, command: str) -> dict | None:
    """`yolo-gism tune` on the protocol's data, teacher and student, one (T, alpha) pair at a time.

    Each finished pair's tune_result.json and results.csv are committed under distill_gain_runs/<protocol>/tune/,
    so the sweep survives sessions and two processes can share it (a pair being trained is locked). Once every
    pair is done, the tool's own tune.json / tune.md are written for the whole grid and copied to
    bench/results/<report>_tune.json / .md."""
    import shutil

    from yolo_gism.tune import tune

    pairs = tune_pairs(protocol)
    if not pairs or not teacher_ready(protocol, "tune"):
        return None
    grid, root = protocol["tune"], RUNS / protocol["name"] / "tune"
    records = RESULTS / "distill_gain_runs" / protocol["name"] / "tune"
    train_args = dict(imgsz=protocol["imgsz"], batch=protocol["batch"], device=protocol["device"], seed=0,
                      epochs=grid["epochs"], **protocol.get("train_args", {}), **protocol.get("gism", {}))
    run = lambda temperatures, alphas: tune(  # noqa: E731
        protocol["student"]["model"], str(teacher_path(protocol)), str(dataset(protocol)), temperatures=temperatures,
        alphas=alphas, out=str(root), **train_args)
    for pair in pairs:
        name = f"T{pair[0]:g}_a{pair[1]:g}"
        record, done = records / name, root / name / "tune_result.json"
        stored = json.loads((record / "tune_result.json").read_text()) if (record / "tune_result.json").exists() else None
        if stored and recorded_settings(stored) == tune_settings(protocol, pair):  # keys added since: defaults
            done.parent.mkdir(parents=True, exist_ok=True)
            done.write_text(json.dumps(stored))
            continue
        done.unlink(missing_ok=True)  # none, or trained with other settings: (re)train
        if stop_file(protocol).exists():
            print(f"[distill_gain] tune {name}: {stop_file(protocol)} exists, starting no new run", flush=True)
            return None
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        if not _claim(root / name):
            print(f"[distill_gain] tune {name}: another process is on it, skipping", flush=True)
            continue
        try:
            print(f"[distill_gain] tune {name} -> {root / name}", flush=True)
            run([pair[0]], [pair[1]])
        finally:
            _release(root / name)
        record.mkdir(parents=True, exist_ok=True)
        done.write_text(json.dumps({**json.loads(done.read_text()), "settings": tune_settings(protocol, pair)}))
        for file in (done, root / name / "results.csv"):
            shutil.copy2(file, record / file.name)
    if not all((root / f"T{t:g}_a{a:g}" / "tune_result.json").exists() for t, a in pairs):
        return None  # another process still has pairs to finish; its last call writes the grid
    result = run(grid["temperatures"], grid["alphas"])  # every pair cached: only writes tune.json and tune.md
    stem = RESULTS / f"{report_name(protocol)}_tune"
    shutil.copy2(root / "tune.json", stem.with_suffix(".json"))
    shutil.copy2(root / "tune.md", stem.with_suffix(".md"))
    with open(stem.with_suffix(".md"), "a") as f:
        f.write(f"\nCommand: `{command}` ({grid['epochs']} epochs per pair, seed 0, the protocol's data and "
                f"teacher, GISM's other settings those of the protocol's GISM runs.)\n")
    return result


# ----- report ------------------------------------------------------------------------------------
def collect(protocol) -> dict[str, list[dict]]:
    """Every committed record that matches the protocol as it stands (stale ones, e.g. of an old GISM default,
    are left out until redone)."""
    found, current = {}, specs(protocol)
    base = RESULTS / "distill_gain_runs" / protocol["name"]
    teacher = record_dir(protocol, "teacher", protocol["teacher"].get("seed", 0)) / "metrics.json"
    shared = [teacher] if home(protocol, "teacher") != protocol["name"] and teacher.exists() else []
    for done in sorted(base.glob("*/seed*/metrics.json")) + shared:
        method, record = done.parent.parent.name, json.loads(done.read_text())
        if method in current and not is_current(record, current[method]):
            continue
        found.setdefault(method, []).append(record)
    sweep = {m: runs for m, runs in found.items() if m == "builtin" or m.startswith("builtin_dis")}
    seed0 = {m: [r for r in runs if r["seed"] == 0] for m, runs in sweep.items()}
    best = max((m for m in seed0 if seed0[m]), key=lambda m: seed0[m][0]["map50_95"], default=None)
    if best:
        found["builtin_tuned"] = [{**r, "dis_from": best} for r in found[best]]
    return found


def summarise(runs: list[dict]) -> dict:
    values = [r["map50_95"] for r in runs]
    out = {
        "map50_95_mean": statistics.mean(values),
        "map50_95_std": statistics.stdev(values) if len(values) > 1 else 0.0,
        "seeds": sorted(r["seed"] for r in runs),
    }
    for key in ("map50", "ap_small", "ap_crowded", "epoch_seconds"):
        out[f"{key}_mean"] = statistics.mean(r[key] for r in runs)
    out["epochs"] = runs[0]["epochs"]
    return out


def environment() -> dict:
    """CPU, cores, threads, GPU and library versions, recorded the same way as the frame-rate results, and whether
    this CPU computes bfloat16 natively: a teacher left at teacher_dtype=auto then runs in bf16, else in fp32, which
    moves the teacher's share of an epoch and so every cost ratio measured here (sessions' machines differ)."""
    from yolo_gism.fps_report import environment as recorded_environment
    from yolo_gism.teacher import cpu_has_native_bf16

    return {**recorded_environment(), "cpu_native_bf16": cpu_has_native_bf16()}


def _relative(path: str) -> str:
    path = Path(path).resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def report_name(protocol: dict) -> str:
    """Stem of a protocol's report files under bench/results/ and name of its README block: the protocol's `report`
    (distill_gain for the current CPU protocol), else distill_gain_<name>, so protocols never overwrite each other."""
    return protocol.get("report") or f"distill_gain_{protocol.get('name', 'unnamed')}"


def matched_to_gism(protocol: dict, runs: list[dict]) -> list[dict]:
    """The time-matched vanilla runs given the time of GISM as the protocol has it now: one given the time of other
    GISM settings (e.g. an old default's) is a vanilla run all the same, but not GISM's rival in the summary."""
    epochs = time_matched_epochs(protocol)
    return [r for r in runs if r["epochs"] == epochs]


def step_report(protocol, command):
    found = collect(protocol)
    counted = {**found, "vanilla_time_matched": matched_to_gism(protocol, found.get("vanilla_time_matched", []))}
    summary = {m: summarise(r) for m, r in counted.items() if r}
    vanilla, teacher = summary.get("vanilla"), summary.get("teacher")
    if vanilla and teacher:
        gap = teacher["map50_95_mean"] - vanilla["map50_95_mean"]
        for s in summary.values():
            s["gap_closed"] = (s["map50_95_mean"] - vanilla["map50_95_mean"]) / gap if gap > 0 else None
    for record in (r for runs in found.values() for r in runs if "curve_map50_95" in r):
        record["gain_last_tenth"] = gain_last_tenth(record["curve_map50_95"])  # records from before it was windowed
    report = {
        "command": command,
        "protocol": as_written(protocol),
        "protocol_file": _relative(protocol["_file"]),
        "environment": environment(),
        "summary": {m: summary[m] for m in (*MAIN_METHODS, "teacher") if m in summary},
        "all_methods": summary,
        "vanilla_curves": {r["seed"]: r["curve_map50_95"] for r in found.get("vanilla", [])},
        "complete": all(m in summary and len(summary[m]["seeds"]) >= len(protocol["seeds"]) for m in MAIN_METHODS),
        "goals": goals(summary),
        "runs": found,
    }
    if "teacher_from" in protocol:  # the gap is to a teacher trained on other data: the tables must say so
        report["teacher_from"] = {"protocol": protocol["teacher_from"], "data": protocol["_teacher_data"],
                                  "students_data": protocol["data"]}
    RESULTS.mkdir(parents=True, exist_ok=True)
    stem = RESULTS / report_name(protocol)
    stem.with_suffix(".json").write_text(json.dumps(report, indent=2))
    stem.with_suffix(".md").write_text(markdown(report))
    plot(report, stem.with_suffix(".png"))
    update_readme(report)
    print(markdown(report))


GOALS = ("gism_vs_vanilla_at_least_2_points", "gism_vs_builtin_at_least_1_point",
         "gism_mean_minus_std_above_builtin_mean_plus_std", "gism_above_time_matched_vanilla", "gism_closes_half_the_gap")


def goal_checks(summary: dict) -> dict[str, tuple[bool | None, str]]:
    """Each of the gain issue's goals as (met, the figures behind the verdict); met is None, with no figures, while a
    method it needs has not run. One place for both, so a verdict and the numbers shown beside it cannot disagree."""
    mean = {m: s["map50_95_mean"] for m, s in summary.items()}
    std = {m: s["map50_95_std"] for m, s in summary.items()}
    seeds = {m: len(s.get("seeds", [])) for m, s in summary.items()}
    gism, vanilla, builtin, matched, teacher = (
        mean.get(m) for m in ("gism", "vanilla", "builtin", "vanilla_time_matched", "teacher"))
    gap = summary.get("gism", {}).get("gap_closed")
    checks = dict.fromkeys(GOALS, (None, ""))
    if gism is not None and vanilla is not None:
        checks["gism_vs_vanilla_at_least_2_points"] = (gism - vanilla >= 0.02, f"{(gism - vanilla) * 100:+.2f} points")
    if gism is not None and builtin is not None:
        checks["gism_vs_builtin_at_least_1_point"] = (gism - builtin >= 0.01, f"{(gism - builtin) * 100:+.2f} points")
        if seeds["gism"] > 1 and seeds["builtin"] > 1:  # one seed has no std to compare
            low, high = gism - std["gism"], builtin + std["builtin"]
            checks["gism_mean_minus_std_above_builtin_mean_plus_std"] = (low > high, f"{low:.4f} against {high:.4f}")
    if gism is not None and matched is not None:
        checks["gism_above_time_matched_vanilla"] = (
            gism > matched, f"{gism:.4f} against {matched:.4f}, {(gism - matched) * 100:+.2f} points")
    if gap is not None:
        half = f"; half is {(vanilla + teacher) / 2:.4f}" if vanilla is not None and teacher is not None else ""
        checks["gism_closes_half_the_gap"] = (gap >= 0.5, f"{gap * 100:.2f} % of the gap{half}")
    return checks


def goals(summary: dict) -> dict:
    """The gain issue's goals, each true/false, or None while a method it needs has not run."""
    return {name: met for name, (met, _) in goal_checks(summary).items()}


STILL_RISING_POINTS = 0.2  # a vanilla gain over the last tenth of epochs above this counts as unconverged


def readme_section(report) -> str:
    """The README's gain results, written from the report only, so the two can never disagree."""
    json_path = f"bench/results/{report_name(report['protocol'])}.json"
    lines = [f"Written by `{report['command']}` into [`{json_path}`]({json_path}) from the committed run records; "
             f"`python bench/distill_gain.py protocol={report.get('protocol_file', '...')}` reruns the protocol itself.",
             "",
             "| method | mAP50-95 (mean ± std) | seeds | epochs | gap closed |", "|---|---|---|---|---|"]
    for m, s in report["summary"].items():
        gap = f"{s['gap_closed']:.2f}" if s.get("gap_closed") is not None else "–"
        std = f" ± {s['map50_95_std']:.4f}" if len(s["seeds"]) > 1 else " (one seed)"
        lines.append(f"| {m} | {s['map50_95_mean']:.4f}{std} | "
                     f"{','.join(map(str, s['seeds']))} | {s['epochs']} | {gap} |")
    lines += goal_lines(report) + ablation_lines(report) + teacher_lines(report)
    lines += ["", convergence_line(report)]
    missing = [m for m in MAIN_METHODS if m not in report["summary"]]
    if not report["complete"]:
        lines += ["", "**Incomplete**: not every main method has all protocol seeds yet"
                  + (f" ({', '.join(missing)} not run at all)" if missing else "")
                  + "; these numbers are partial and prove nothing yet."]
    return "\n".join(lines)


def goal_lines(report) -> list[str]:
    """Each goal's verdict with the figures behind it, so a goal missed by a hair reads differently from one missed
    by a mile (the gap closed rounds to 0.49 or 0.50 in the tables)."""
    figures = {name: figure for name, (_, figure) in goal_checks(report["summary"]).items()}
    verdict = {True: "met", False: "**not met**", None: "not measured yet"}
    lines = ["", "Goals (CPU protocol), judged on `gism`:"]
    for name, ok in report["goals"].items():
        shown = f" ({figures[name]})" if ok is not None and figures.get(name) else ""
        lines.append(f"- {name.replace('_', ' ')}: {verdict[ok]}{shown}")
    return lines


def ablation_lines(report) -> list[str]:
    """Seed-0 ablations and dis sweep beside the vanilla run of the same seed, with what each one changes."""
    ablations = report["protocol"].get("ablations", {})
    order = [f"ablation_{name}" for name in ablations]  # the protocol's order, then anything else (dis sweep)
    runs = {m: r for m, r in report["all_methods"].items() if m.startswith(("ablation_", "builtin_dis"))}
    runs = dict(sorted(runs.items(), key=lambda item: order.index(item[0]) if item[0] in order else len(order)))
    if not runs:
        return []
    vanilla = next((r["map50_95"] for r in report["runs"].get("vanilla", []) if r["seed"] == 0), None)
    written = report["protocol"].get("ablations_as_written", ablations)  # reports from before it: the settings
    lines = ["", "Ablations and method search, seed 0 (a GISM row runs the protocol's GISM settings with the changes "
             "shown, a settings file's keys first where one is named):", "",
             "| run | changes | mAP50-95 | vs vanilla (seed 0), points |", "|---|---|---|---|"]
    for m, s in runs.items():
        if m.startswith("builtin_dis"):
            changes = f"built-in, dis={m.removeprefix('builtin_dis')}"
        else:
            changes = _changes(written.get(m.removeprefix("ablation_"), {}))
        value = next((r["map50_95"] for r in report["runs"].get(m, []) if r["seed"] == 0), s["map50_95_mean"])
        delta = f"{100 * (value - vanilla):+.2f}" if vanilla is not None else "–"
        lines.append(f"| {m.removeprefix('ablation_')} | {changes} | {value:.4f} | {delta} |")
    return lines + matched_lines(report)


def _changes(value: str | dict) -> str:
    """An ablation as its protocol writes it: a settings file's name, then each key it sets."""
    if isinstance(value, str):
        return value
    named = [value["settings"]] if "settings" in value else []
    return ", ".join(named + [f"{k}={v}" for k, v in value.items() if k != "settings"]) or "–"


def matched_lines(report) -> list[str]:
    """Each method with a vanilla run given its time (`match_time`), seed by seed: the direct test of whether it
    beats training longer."""
    lines = []
    for method in report["protocol"].get("match_time", []):
        ours = {r["seed"]: r["map50_95"] for r in report["runs"].get(method, [])}
        longer = {r["seed"]: r for r in report["runs"].get(matched_name(method), [])}
        seeds = sorted(set(ours) & set(longer))
        if not seeds:
            continue
        diffs = [100 * (ours[k] - longer[k]["map50_95"]) for k in seeds]
        spread = f" ± {statistics.stdev(diffs):.2f}" if len(diffs) > 1 else ""
        lines.append(f"{method.removeprefix('ablation_')} against a vanilla student given its time "
                     f"({longer[seeds[0]]['epochs']} epochs): " + ", ".join(
                         f"seed {k} {ours[k]:.4f} vs {longer[k]['map50_95']:.4f}" for k in seeds)
                     + f"; difference {statistics.mean(diffs):+.2f}{spread} points over {len(seeds)} seed(s).")
    return [""] + lines if lines else []


def convergence_line(report) -> str:
    """Has the vanilla student stopped improving? An unconverged schedule flatters distillation."""
    curves = report["vanilla_curves"].values()
    gains = [100 * gain_last_tenth(c) for c in curves if len(c) > 10]
    if not gains:
        return "Vanilla convergence: no vanilla curve recorded yet."
    gain = statistics.mean(gains)
    verdict = ("it has stopped improving" if gain < STILL_RISING_POINTS else
               "it is **still rising**, so epoch-matched gains flatter distillation; the time-matched vanilla is the "
               "fair comparison")
    line = (f"Vanilla convergence: mAP50-95 rose {gain:+.2f} points over the last tenth of its epochs "
            f"(means of up to 5 epochs at each end; mean of {len(gains)} seed(s)); {verdict}.")
    vanilla, matched = report["summary"].get("vanilla"), report["summary"].get("vanilla_time_matched")
    if vanilla and matched:  # the direct test: did more epochs of the same recipe help?
        line += (f" Training longer instead: {matched['epochs']} epochs scored "
                 f"{100 * (matched['map50_95_mean'] - vanilla['map50_95_mean']):+.2f} points over {vanilla['epochs']} "
                 f"(seeds {','.join(map(str, matched['seeds']))} against {','.join(map(str, vanilla['seeds']))}).")
    return line


def update_readme(report, path: Path = ROOT / "README.md") -> None:
    replace_block(path, report_name(report["protocol"]), readme_section(report))


def teacher_lines(report) -> list[str]:
    """Where the teacher came from, when another protocol trained it on its own data."""
    source = report.get("teacher_from")
    if not source:
        return []

    def images(data: dict) -> str:
        return f"{data['train']} training images" if data.get("source") == "builtin" else f"`{data.get('source')}`"

    return ["", f"Teacher: the finished teacher of `{source['protocol']}`, trained on that protocol's data "
                f"({images(source['data'])}), not on the students' ({images(source['students_data'])}); the gap "
                f"closed is measured to a teacher that saw more than the students."]


def markdown(report) -> str:
    lines = [f"# Distillation gain ({report['protocol']['name']} protocol)", "",
             f"Command: `{report['command']}`", "",
             "| method | mAP50-95 (mean ± std) | seeds | mAP50 | AP small | AP crowded | s/epoch | epochs | gap closed |",
             "|---|---|---|---|---|---|---|---|---|"]
    for m, s in report["all_methods"].items():
        gap = f"{s['gap_closed']:.2f}" if s.get("gap_closed") is not None else "–"
        lines.append(f"| {m} | {s['map50_95_mean']:.4f} ± {s['map50_95_std']:.4f} | {len(s['seeds'])} | "
                     f"{s['map50_mean']:.4f} | {s['ap_small_mean']:.4f} | {s['ap_crowded_mean']:.4f} | "
                     f"{s['epoch_seconds_mean']:.1f} | {s['epochs']} | {gap} |")
    lines += goal_lines(report) + teacher_lines(report) + ["", convergence_line(report)]
    if not report["complete"]:
        lines += ["", "**Incomplete:** not every main method has all protocol seeds yet; numbers are partial."]
    return "\n".join(lines) + "\n"


def plot(report, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4))
    methods = list(report["all_methods"])
    means = [report["all_methods"][m]["map50_95_mean"] for m in methods]
    stds = [report["all_methods"][m]["map50_95_std"] for m in methods]
    ax1.barh(methods, means, xerr=stds)
    ax1.set_xlabel("mAP50-95")
    for seed, curve in report["vanilla_curves"].items():
        ax2.plot(range(1, len(curve) + 1), curve, label=f"vanilla seed {seed}")
    ax2.set_xlabel("epoch")
    ax2.set_ylabel("val mAP50-95")
    if report["vanilla_curves"]:
        ax2.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def stop_runs_on_sigterm() -> None:
    """`kill <pid>` of a protocol process stops its training run too: SIGTERM becomes SystemExit, on which
    subprocess.run kills the child it waits for and `ensure` releases its claim on the run folder. Without it the
    child trained on, orphaned, slowing every other run on the machine. The run resumes from its last epoch."""
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))


def main(argv: list[str]) -> None:
    if argv and argv[0] == "_one":
        job = json.loads(argv[1])
        protocol = load_protocol(job["protocol"])
        protocol = on_device(protocol, job["device"]) if job.get("device") else protocol
        train_one(protocol, job["method"], job["seed"], dict(job["spec"]))
        return
    stop_runs_on_sigterm()
    args = dict(a.split("=", 1) for a in argv)
    protocol = load_protocol(args.get("protocol", str(ROOT / "cfg" / "distill_gain_cpu.yaml")))
    steps = args.get("steps", "teacher,cost,main,ablations,tune,report").split(",")
    if "device" in args and steps != ["teacher"]:
        raise ValueError(f"device={args['device']} goes with steps=teacher alone: the students of a protocol are "
                         f"compared by their epoch times on the protocol's own device ({protocol['device']})")
    protocol = on_device(protocol, args["device"]) if "device" in args else protocol
    seeds = [int(s) for s in args["seeds"].split(",")] if "seeds" in args else protocol["seeds"]
    command = " ".join(["python bench/distill_gain.py", *argv])
    os.environ.setdefault("YOLO_OFFLINE", "1")
    if "vanilla" in steps:
        step_vanilla(protocol, seeds)
    if "teacher" in steps:
        step_teacher(protocol)
    only = args["only"].split(",") if "only" in args else None
    known = set(specs(protocol)) | set(MAIN_METHODS)
    if only and set(only) - known:
        raise ValueError(f"only={','.join(sorted(set(only) - known))}: not in the protocol; its runs are "
                         f"{', '.join(sorted(known))}")
    if "cost" in steps:
        step_cost(protocol, command)
    if "main" in steps:
        step_main(protocol, seeds, only)
    if "ablations" in steps:
        step_ablations(protocol, only, seeds if "seeds" in args else [0])
    if "tune" in steps:
        step_tune(protocol, command)
    if "report" in steps:
        step_report(protocol, command)


if __name__ == "__main__":
    main(sys.argv[1:])
