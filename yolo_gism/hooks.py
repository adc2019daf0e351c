"""FeatureRecorder: reads chosen layers' outputs without leaving anything on the models.

A single process-wide forward hook (torch's register_module_forward_hook) filtered by module identity
records the outputs of watched layers. The watched models carry no hook object of ours, so deep copies
and pickles of the student (EMA, checkpoints, resume, NaN recovery) can never capture one. The
handle is kept and removed by `detach`; the buffer is emptied every time it is read.
"""

from __future__ import annotations

from torch import nn
from torch.nn.modules.module import register_module_forward_hook


class FeatureRecorder:
    def __init__(self):
        self._watched: dict[int, object] = {}
        self._outputs: dict[object, object] = {}
        self._handle = None

    def watch(self, module: nn.Module, key) -> None:
        self._watched[id(module)] = key

    def attach(self) -> FeatureRecorder:
        if self._handle is None and self._watched:
            self._handle = register_module_forward_hook(self._record)
        return self

    def detach(self) -> None:
        if self._handle is not None:
            self._handle.remove()
            self._handle = None
        self._outputs = {}

    @property
    def attached(self) -> bool:
        return self._handle is not None

    def _record(self, module, inputs, output):
        key = self._watched.get(id(module))
        if key is not None:
            self._outputs[key] = output

    def pop(self) -> dict:
        """Return what was recorded since the last read and forget it."""
        outputs, self._outputs = self._outputs, {}
        return outputs
