"""The facts about the machine that every benchmark prints beside its numbers."""

from __future__ import annotations

import dataclasses
import os
import platform
from dataclasses import dataclass

from textsae.results import JSONObject

__all__ = ["BenchProvenance", "Machine", "machine_description"]


@dataclass(frozen=True)
class Machine:
    """CPU/OS/library facts of the machine a benchmark ran on."""

    machine: str
    """``platform.machine()``, e.g. ``x86_64``."""
    cpu_count: int | None
    python: str
    torch: str
    gpu: str | None
    """The first CUDA device's name; ``None`` without one."""

    @classmethod
    def current(cls) -> Machine:
        """This machine's facts (imports torch)."""
        import torch

        return cls(
            machine=platform.machine(),
            cpu_count=os.cpu_count(),
            python=platform.python_version(),
            torch=torch.__version__,
            gpu=torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        )

    def to_json(self) -> JSONObject:
        """``{"machine", "cpu_count", "python", "torch", "gpu"}``."""
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: JSONObject) -> Machine:
        """Inverse of :meth:`to_json`.

        Raises:
            KeyError: A key is missing.
        """
        return cls(**{f.name: data[f.name] for f in dataclasses.fields(cls)})


@dataclass(frozen=True)
class BenchProvenance:
    """What ``textsae bench tfidf|featurize|train`` add to a result: the data, the command line and the machine."""

    data: str
    """Where the documents came from (``synthetic batches`` for the training bench)."""
    command: str
    machine: Machine

    def to_json(self) -> JSONObject:
        """``{"data", "command", <machine facts>}``: the keys appended to the result's JSON."""
        return {"data": self.data, "command": self.command, **self.machine.to_json()}


def machine_description() -> JSONObject:
    """CPU/OS/library facts printed beside every benchmark (:meth:`Machine.current` as JSON)."""
    return Machine.current().to_json()
