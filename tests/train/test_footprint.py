"""The memory and disk estimate of a training run, and the one-line refusal before any weight is allocated."""

from __future__ import annotations

from pathlib import Path

import pytest

from textsae.config.compose import load_recipe
from textsae.config.schema import SAEConfig, TrainConfig
from textsae.errors import UserError
from textsae.pipeline import Pipeline
from textsae.train import footprint
from textsae.train.footprint import GIB, estimate


def test_estimate_of_a_large_tfidf_sae() -> None:
    """30,000 terms × 8,192 latents: the shape whose peak docs/benchmarks.md measured (7.4–8.0 GiB)."""
    result = estimate(SAEConfig(n_latents=8192, k=64), 30_000, TrainConfig(batch_size=512))
    assert result.parameters == 4 * (2 * 30_000 * 8192 + 8192 + 30_000)
    assert result.optimizer == 2 * result.parameters
    assert result.gradient == 4 * 30_000 * 8192
    assert 6.0 < result.memory / GIB < 7.6  # weights, Adam and one gradient; the measured peak adds the heap kept
    assert result.disk == 7 * result.parameters


def test_a_run_that_cannot_fit_stops_before_training(
    tiny_recipe: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(footprint, "available_memory", lambda device: 1 << 20)  # 1 MiB free
    pipeline = Pipeline(load_recipe(tiny_recipe, [f"run.dir={tmp_path / 'run'}", "train.device=cpu"]))
    pipeline.prepare()
    with pytest.raises(
        UserError, match=r"needs about 0\.\d GiB of memory on cpu .* but 0\.0 GiB is free: set a smaller"
    ):
        pipeline.train()
    assert not (tmp_path / "run" / "sae").exists() and not pipeline.paths.checkpoint.exists()


def test_disk_is_checked_where_checkpoints_go(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    class Usage:
        free = 1000

    monkeypatch.setattr(footprint.shutil, "disk_usage", lambda path: Usage())
    with pytest.raises(UserError, match="writes checkpoints and the trained weights of about"):
        footprint.check_fits(
            estimate(SAEConfig(n_latents=64, k=4), 100, TrainConfig()),
            device="cpu",
            run_dir=tmp_path / "not" / "yet",
            n_latents=64,
            d_in=100,
        )


def test_available_memory_reads_the_system() -> None:
    free = footprint.available_memory("cpu")
    assert free is None or free > 0
