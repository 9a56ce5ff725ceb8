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
    """30,000 terms × 8,192 latents: the shape whose peak docs/benchmarks.md measured (7.1–7.3 GiB)."""
    result = estimate(SAEConfig(n_latents=8192, k=64), 30_000, TrainConfig(batch_size=512))
    assert result.parameters == 4 * (2 * 30_000 * 8192 + 8192 + 30_000)
    assert result.optimizer == 2 * result.parameters
    assert result.gradient == 4 * 30_000 * 8192
    assert 6.0 < result.memory / GIB < 7.6  # weights, Adam and one gradient; the measured peak adds the heap kept
    assert result.disk == 7 * result.parameters


def test_a_dictionary_split_across_ranks_needs_its_share_of_memory_and_the_whole_disk() -> None:
    whole = estimate(SAEConfig(n_latents=8192, k=64), 30_000, TrainConfig(batch_size=512))
    half = estimate(SAEConfig(n_latents=8192, k=64), 30_000, TrainConfig(batch_size=512), shards=2)
    assert half.parameters == 4 * (2 * 30_000 * 4096 + 4096 + 30_000)  # b_dec stays whole on every rank
    assert half.gradient * 2 == whole.gradient and half.optimizer == 2 * half.parameters
    assert 0.5 < half.memory / whole.memory < 0.55
    assert half.disk == whole.disk  # rank 0 writes whole checkpoints


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


def test_available_memory_is_memavailable_or_the_address_space_left(monkeypatch: pytest.MonkeyPatch) -> None:
    from textsae import runtime

    meminfo = {"value": 8 * GIB}
    monkeypatch.setattr(runtime, "_proc_number", lambda path, key: meminfo["value"])
    for room, expected in ((None, 8 * GIB), (GIB, GIB), (16 * GIB, 8 * GIB)):
        monkeypatch.setattr(runtime, "_address_space_left", lambda room=room: room)
        assert runtime.available_memory("cpu") == expected, room
    meminfo["value"] = None  # no /proc/meminfo: the limit alone, or nothing
    assert runtime.available_memory("cpu") == 16 * GIB
    monkeypatch.setattr(runtime, "_address_space_left", lambda: None)
    assert runtime.available_memory("cpu") is None


@pytest.mark.skipif(not Path("/proc/meminfo").is_file(), reason="reads Linux's /proc/meminfo")
def test_available_memory_reads_the_system_and_its_limit() -> None:
    """The real /proc/meminfo; then, for one call, a `ulimit -v` 1 GiB above what this process has mapped: the free
    memory reported is at most what that limit leaves."""
    import resource

    from textsae import runtime

    total = runtime._proc_number(Path("/proc/meminfo"), "MemTotal:")
    free = footprint.available_memory("cpu")
    assert total is not None and free is not None and 0 < free <= total
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    used = runtime._proc_number(Path("/proc/self/status"), "VmSize:")
    assert used is not None
    if hard != resource.RLIM_INFINITY and hard < used + GIB:
        pytest.skip("the hard address-space limit leaves no room for the test's own")
    resource.setrlimit(resource.RLIMIT_AS, (used + GIB, hard))
    try:
        limited = footprint.available_memory("cpu")
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
    assert limited is not None and 0 < limited <= GIB
