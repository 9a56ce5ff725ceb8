"""The facts about the machine that every benchmark prints beside its numbers."""

from __future__ import annotations

import os
import platform
from typing import Any

__all__ = ["machine_description"]


def machine_description() -> dict[str, Any]:
    """CPU/OS/library facts printed beside every benchmark."""
    import torch

    return {
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }
