"""The kept measurement scripts in benchmarks/ still run against the current API (tiny sizes; the numbers mean nothing)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _run(script: str, *args: str) -> dict[str, object]:
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("reuse_memory", ["true", "false"])
def test_train_step_script_times_the_trainers_step(reuse_memory: str) -> None:
    line = _run(
        "train_step.py", "--d-in", "300", "--n-latents", "64", "--batch", "16", "--nnz", "5", "--k", "4",
        "--steps", "2", "--reuse-memory", reuse_memory,
    )  # fmt: skip
    assert line["reuse_memory"] == reuse_memory and len(line["seconds_per_step"]) == 2  # type: ignore[arg-type]


def test_decoder_blocks_script_times_both_products() -> None:
    line = _run(
        "decoder_blocks.py", "--batch", "8", "--n-latents", "16", "--d-in", "2000", "--k", "2", "--blocks-mb", "1"
    )
    assert float(line["embedding_bag_ms"]) > 0 and len(line["blocked_ms"]) == 1  # type: ignore[arg-type]


def test_encoder_blocks_script_times_both_products_and_they_agree() -> None:
    line = _run(
        "encoder_blocks.py", "--batch", "8", "--n-latents", "300", "--d-in", "50", "--nnz", "5", "--blocks-mb", "0.01"
    )
    assert list(line["blocked_ms"]) == ["0.01 MB (3 blocks)"]  # type: ignore[call-overload]
    assert float(line["max_abs_difference"]) < 1e-5  # type: ignore[arg-type]


@pytest.mark.parametrize("toggle", ["fused-encoder", "native", "torch-threads"])
def test_step_ab_script_alternates_the_path_in_one_process(toggle: str, request: pytest.FixtureRequest) -> None:
    if toggle == "torch-threads":
        request.getfixturevalue("native_kernels")  # it loads both builds of the kernels
    line = _run(
        "step_ab.py", "--toggle", toggle, "--d-in", "300", "--n-latents", "64", "--k", "4", "--batch", "16",
        "--nnz", "5", "--rounds", "2", "--steps", "1", "--phases",
    )  # fmt: skip
    times = line["seconds_per_step"]
    assert line["toggle"] == toggle and [len(times["on"]), len(times["off"])] == [2, 2]  # type: ignore[index]
    assert float(line["ratio_off_over_on_median"]) > 0  # type: ignore[arg-type]
    phases = line["phases_median"]["on"]  # type: ignore[index]
    assert "page_faults" in phases and float(phases["optimizer.step_ms"]) > 0


@pytest.mark.usefixtures("native_kernels")
def test_topk_script_times_both_sides_and_says_which_the_rule_picks() -> None:
    line = _run("topk.py", "--rows", "4", "--cols", "64", "--k", "4,16", "--sorted", "--repeats", "1")
    assert line["k"] == 16 and line["sorted"] is True and line["native_pays"] is False
    assert float(line["native_ms"]) > 0 and float(line["torch_ms"]) > 0  # type: ignore[arg-type]
