"""Architecture registry: ``sae.architecture`` name → SAE class."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from typing import TypeVar

from textsae.config.schema import SAEConfig
from textsae.errors import UserError
from textsae.sae.base import SparseAutoencoder
from textsae.sae.sizing import DataShape, resolve_sizes

__all__ = ["SAE_REGISTRY", "build_sae", "load_sae", "register_sae", "sae_config_classes"]

SAE_REGISTRY: dict[str, type[SparseAutoencoder]] = {}
"""Registered SAE classes by architecture name (filled when ``textsae.sae`` is imported)."""

_SAE = TypeVar("_SAE", bound=type[SparseAutoencoder])


def register_sae(name: str, *, config: type[SAEConfig]) -> Callable[[_SAE], _SAE]:
    """Class decorator: register an SAE class under ``name`` with its config dataclass.

    Registering is all it takes for the architecture to be accepted in ``sae.architecture``, listed by ``textsae
    ls``, built by :func:`build_sae`, loaded by :func:`load_sae` and covered by the SAE contract tests.

    Args:
        name: Architecture name, as written in ``sae.architecture``.
        config: The architecture's config: a dataclass subclass of :class:`SAEConfig` that adds its own keys.

    Returns:
        The decorator, which returns the class unchanged apart from ``architecture`` and ``config_class``.

    Raises:
        ValueError: If ``name`` is already taken by another class, or ``config`` is not an SAEConfig dataclass.
    """
    if not (isinstance(config, type) and issubclass(config, SAEConfig) and dataclasses.is_dataclass(config)):
        raise ValueError(f"register_sae({name!r}): config must be a dataclass subclass of SAEConfig. Got {config!r}.")

    def decorator(cls: _SAE) -> _SAE:
        existing = SAE_REGISTRY.get(name)
        if existing is not None and existing.__qualname__ != cls.__qualname__:
            raise ValueError(
                f"SAE architecture {name!r} is already registered to {existing.__qualname__}; got {cls.__qualname__}."
            )
        cls.architecture = name
        cls.config_class = config
        SAE_REGISTRY[name] = cls
        return cls

    return decorator


def sae_config_classes() -> dict[str, type[SAEConfig]]:
    """Each registered architecture's config class, by name (imports :mod:`textsae.sae` so all are registered)."""
    import textsae.sae  # noqa: F401  (registers the built-in architectures)

    return {name: cls.config_class for name, cls in SAE_REGISTRY.items()}


def build_sae(cfg: SAEConfig, d_in: int, data: DataShape | None = None) -> SparseAutoencoder:
    """A freshly initialised SAE of the architecture ``cfg.architecture`` names.

    Initialisation draws from torch's global RNG (seed it with ``torch.manual_seed``).

    Args:
        cfg: SAE configuration.
        d_in: Input dimension.
        data: The training rows' shape (``DataShape.of(features)``); needed when ``sae.n_latents`` or
            ``sae.k`` is ``auto`` (see :mod:`textsae.sae.sizing`).

    Returns:
        The SAE, on CPU, in training mode; its ``cfg`` holds the resolved sizes.

    Raises:
        UserError: If the architecture is not registered, ``d_in`` < 1, or sizes are ``auto`` without ``data``.
    """
    sae_cls = SAE_REGISTRY.get(cfg.architecture)
    if sae_cls is None:
        raise UserError(f"Unknown sae.architecture {cfg.architecture!r}. Expected one of {sorted(SAE_REGISTRY)}.")
    if data is not None:
        cfg = resolve_sizes(cfg, data)
    return sae_cls(d_in, cfg)


def load_sae(directory: str | os.PathLike[str]) -> SparseAutoencoder:
    """Load an SAE written by ``save_pretrained``; see :meth:`SparseAutoencoder.from_pretrained`.

    Args:
        directory: Folder holding ``config.json`` and ``model.safetensors``.

    Returns:
        The SAE on CPU, in eval mode, as the subclass its config names.

    Raises:
        UserError: Naming the file, if a file is missing, corrupt or does not match the config.
    """
    return SparseAutoencoder.from_pretrained(directory)
