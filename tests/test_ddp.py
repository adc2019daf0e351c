"""Multi-GPU paths that can be proven on CPU.

Ultralytics' DDP needs CUDA, so two things are checked here: (1) the worker's reconstruction of the
trainer from Ultralytics' own DDP file (pickled class, validated args without GISM keys, callbacks) in a
subprocess, which must still distill; (2) our own synchronisation over a 2-process gloo group.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from yolo_gism import GISMTrainer
from yolo_gism.distributed import average_gradients, average_tensor, broadcast_module
from yolo_gism.losses import LevelWeights


def test_ddp_worker_rebuilds_a_distilling_trainer(tiny_data, trained_teacher, tmp_path):
    from ultralytics.utils.dist import ddp_cleanup, generate_ddp_file

    trainer = GISMTrainer(overrides=dict(
        model="yolov8n.yaml", data=str(tiny_data), teacher=str(trained_teacher), epochs=1, imgsz=64, batch=8,
        device="cpu", workers=0, plots=False, project=str(tmp_path), name="ddp", exist_ok=True, kd_warmup=0,
        kd_ramp=0, temperature=3.5, amp=False))
    assert "teacher" not in vars(trainer.args) and "temperature" not in vars(trainer.args)
    trainer.model = trainer.get_model(cfg="yolov8n.yaml", verbose=False)
    file = generate_ddp_file(trainer)
    try:
        env = {**os.environ, "YOLO_OFFLINE": "1"}
        out = subprocess.run([sys.executable, file], capture_output=True, text=True, env=env, timeout=900)
    finally:
        ddp_cleanup(trainer, file)
    assert out.returncode == 0, out.stderr[-3000:]
    state = torch.load(tmp_path / "ddp" / "weights" / "gism_last.pt", weights_only=True)
    assert state["config"]["temperature"] == 3.5  # the worker's trainer got the GISM config
    with open(tmp_path / "ddp" / "results.csv") as f:
        row = {k.strip(): v for k, v in next(csv.DictReader(f)).items()}
    assert float(row["train/feat_loss"]) > 0 and float(row["train/kdcls_loss"]) > 0


def _rank_main(rank: int, world: int, init_file: str, out_dir: str):
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    torch.manual_seed(rank)  # ranks start different, as Ultralytics seeds them
    adapters = torch.nn.ModuleList([torch.nn.Conv2d(4, 8, 1), torch.nn.Conv2d(6, 8, 1)])
    broadcast_module(adapters)
    optimizer = torch.optim.SGD(adapters.parameters(), lr=0.1)
    weights = LevelWeights(2)
    for step in range(3):
        x = [torch.randn(2, 4, 5, 5) * (rank + 1), torch.randn(2, 6, 3, 3)]
        losses = torch.stack([a(xi).pow(2).mean() for a, xi in zip(adapters, x)])
        losses.sum().backward()
        average_gradients(adapters)
        optimizer.step()
        optimizer.zero_grad()
        weights.update(average_tensor(losses.detach()))
    torch.save({"adapters": adapters.state_dict(), "weights": weights.state_dict()}, f"{out_dir}/rank{rank}.pt")
    dist.destroy_process_group()


def test_adapters_and_level_statistics_stay_identical_across_two_gloo_ranks(tmp_path):
    if not dist.is_available():
        pytest.skip("torch.distributed is not available in this build")
    mp.spawn(_rank_main, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    a, b = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    for key in a["adapters"]:
        assert torch.equal(a["adapters"][key], b["adapters"][key]), key
    assert torch.equal(a["weights"]["running"], b["weights"]["running"])
    seed0 = torch.manual_seed(0) and torch.nn.Conv2d(4, 8, 1)
    assert not torch.equal(a["adapters"]["0.weight"], seed0.weight)  # they trained, from rank 0's start
