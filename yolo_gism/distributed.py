"""Keeping the trainer's own modules (adapters, level statistics) identical across DDP ranks.

Ultralytics' DDP wrapper only covers the student; the adapters live beside it, so their start values are
broadcast from rank 0 and their gradients averaged here. Every function is a no-op without a process group.
"""

from __future__ import annotations

import torch
from torch import distributed as dist
from torch import nn


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def broadcast_module(module: nn.Module, src: int = 0) -> None:
    if not is_distributed():
        return
    with torch.no_grad():
        for tensor in [*module.parameters(), *module.buffers()]:
            dist.broadcast(tensor.data, src=src)


def average_gradients(module: nn.Module) -> None:
    if not is_distributed():
        return
    world = dist.get_world_size()
    for p in module.parameters():
        if p.grad is None:
            p.grad = torch.zeros_like(p)
        dist.all_reduce(p.grad, op=dist.ReduceOp.SUM)
        p.grad.div_(world)


def average_tensor(tensor: torch.Tensor) -> torch.Tensor:
    """Mean of a tensor over ranks (a copy); the input itself is returned without a process group."""
    if not is_distributed():
        return tensor
    out = tensor.detach().clone()
    dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out / dist.get_world_size()
