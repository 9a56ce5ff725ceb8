"""Two jobs on one run directory: the second exits 2 naming the first's PID, or waits with --wait."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from textsae.cli.main import main
from textsae.locks import LOCK_NAME, BusyError, directory_lock

HOLD = """
import sys, time
from pathlib import Path
from textsae.locks import directory_lock
with directory_lock(Path(sys.argv[1]), what="run directory"):
    print("locked", flush=True)
    time.sleep(float(sys.argv[2]))
"""


def _holder(directory: Path, seconds: float) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(directory), str(seconds)], stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None and process.stdout.readline().strip() == "locked"
    return process


def test_second_job_exits_2_naming_the_holder(
    recipe_for_lock: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir = tmp_path / "run"
    holder = _holder(run_dir, 30)
    try:
        code = main(["run", str(recipe_for_lock), f"run.dir={run_dir}", "-q"])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2
        assert len(err) == 1 and f"is in use by PID {holder.pid}" in err[0] and "--wait" in err[0]
        assert not (run_dir / "config.yaml").exists()  # nothing of the second job was written
    finally:
        holder.kill()
        holder.wait()


def test_lock_is_released_when_the_holder_dies(tmp_path: Path) -> None:
    holder = _holder(tmp_path, 30)
    with pytest.raises(BusyError), directory_lock(tmp_path, what="x"):
        pass
    holder.kill()
    holder.wait()
    with directory_lock(tmp_path, what="x"):
        assert (tmp_path / LOCK_NAME).read_text() == str(os.getpid())
    assert (tmp_path / LOCK_NAME).read_text() == ""


def test_wait_waits_for_the_holder(tmp_path: Path) -> None:
    holder = _holder(tmp_path, 1.5)
    start = time.perf_counter()
    with directory_lock(tmp_path, what="x", wait=True, poll_seconds=0.1):
        waited = time.perf_counter() - start
    holder.wait()
    assert waited >= 0.5


@pytest.fixture
def recipe_for_lock(tmp_path: Path, tiny_corpus_dir: Path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(
        f"name: tiny\ndata:\n  path: {tiny_corpus_dir}\nsae:\n  n_latents: 32\n  k: 4\n"
        "runtime:\n  progress: false\ntrain:\n  steps: 3\n  batch_size: 32\n",
        encoding="utf-8",
    )
    return path


def test_encode_into_a_busy_out_folder_exits_2_naming_the_holder(
    recipe_for_lock: Path, tiny_corpus_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir = tmp_path / "run"
    assert main(["train", str(recipe_for_lock), f"run.dir={run_dir}", "-q"]) == 0
    capsys.readouterr()
    out = tmp_path / "codes"
    holder = _holder(out, 30)
    try:
        code = main(["encode", str(run_dir), str(tiny_corpus_dir / "test.parquet"), "--out", str(out), "-q"])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2
        assert len(err) == 1 and f"--out folder {out} is in use by PID {holder.pid}" in err[0], err
        assert sorted(p.name for p in out.iterdir()) == [LOCK_NAME]  # nothing of the second job was written
    finally:
        holder.kill()
        holder.wait()
    assert main(["encode", str(run_dir), str(tiny_corpus_dir / "test.parquet"), "--out", str(out), "-q"]) == 0


def test_a_lock_planted_as_a_symlink_is_refused_and_its_target_kept(tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("precious", encoding="utf-8")
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / LOCK_NAME).symlink_to(victim)
    with pytest.raises(BusyError.__mro__[1], match="cannot be used as the lock"), directory_lock(run_dir, what="x"):
        pass
    assert victim.read_text(encoding="utf-8") == "precious"
