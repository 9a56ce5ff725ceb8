"""Data-parallel training on 2 gloo ranks: the same SAE as one process, and resume after one rank is killed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file

from tests.distributed.launch import torchrun

SCRIPT = str(Path(__file__).with_name("train_tiny.py"))

ATOL, RTOL = 5e-5, 1e-4
"""2 ranks vs 1 process after 24 Adam steps on weights of magnitude <= 1. Not bitwise: each rank's gradient is a sum
over its 16 rows and the two are then added, where one process sums the 32 rows in another order, so the float32
rounding differs (observed: at most 1.2e-5 on W_enc)."""


def _weights(folder: Path, rank: int = 0) -> dict[str, torch.Tensor]:
    return load_file(str(folder / f"sae-rank{rank}.safetensors"))


def _one_process(out: Path, *args: str, env: dict[str, str] | None = None) -> None:
    out.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [sys.executable, SCRIPT, str(out), *args],
        check=True,
        env={**torchrun_env(), **(env or {})},
        capture_output=True,
        timeout=300,
    )


def torchrun_env() -> dict[str, str]:
    import os

    root = str(Path(__file__).resolve().parents[2])
    return {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]),
    }


def test_two_ranks_train_the_same_sae_as_one_process(tmp_path: Path) -> None:
    _one_process(tmp_path / "one")
    (tmp_path / "two").mkdir()
    torchrun(2, [SCRIPT, str(tmp_path / "two")])
    one, two, two_other = _weights(tmp_path / "one"), _weights(tmp_path / "two"), _weights(tmp_path / "two", 1)
    for name, value in one.items():
        assert torch.equal(two[name], two_other[name]), f"{name} differs between the ranks"
        torch.testing.assert_close(two[name], value, atol=ATOL, rtol=RTOL, msg=name)
    # the logged loss is the global batch's (a mean over rows): the same numbers up to rounding
    logs = [
        [json.loads(line) for line in (tmp_path / run / "metrics.jsonl").read_text().splitlines()]
        for run in ("one", "two")
    ]
    assert [r["step"] for r in logs[0]] == [r["step"] for r in logs[1]] == list(range(1, 25))
    for a, b in zip(*logs, strict=True):
        assert abs(a["loss"] - b["loss"]) <= 1e-4 * abs(a["loss"]) and a["dead_fraction"] == b["dead_fraction"]
        assert abs(a["fvu"] - b["fvu"]) <= 1e-4 * abs(a["fvu"])  # the global batch's FVU, not a mean of the ranks'


def test_a_killed_rank_resumes_from_the_checkpoint_to_the_uninterrupted_sae(tmp_path: Path) -> None:
    (tmp_path / "whole").mkdir()
    torchrun(2, [SCRIPT, str(tmp_path / "whole")])
    (tmp_path / "killed").mkdir()
    kill = {"TEXTSAE_TEST_KILL_AT": "train-step#10", "TEXTSAE_TEST_KILL_RANK": "1"}
    failed = torchrun(2, [SCRIPT, str(tmp_path / "killed")], env=kill, check=False)
    assert failed.returncode != 0
    assert not (tmp_path / "killed" / "summary.txt").exists()
    assert load_file(str(tmp_path / "killed" / "ckpt.safetensors"))  # step 6's, written by rank 0 alone
    torchrun(2, [SCRIPT, str(tmp_path / "killed")])
    assert (tmp_path / "killed" / "summary.txt").read_text().split() == ["24", "6"]
    whole, resumed = _weights(tmp_path / "whole"), _weights(tmp_path / "killed")
    for name, value in whole.items():
        assert torch.equal(resumed[name], value), name
    assert (tmp_path / "whole" / "metrics.jsonl").read_text() == (tmp_path / "killed" / "metrics.jsonl").read_text()


def test_torchrun_textsae_run_gives_the_one_process_run(tmp_path: Path, tiny_recipe: Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    subprocess.run(
        [sys.executable, "-m", "textsae", "run", str(tiny_recipe), f"run.dir={one}"],
        check=True,
        env=torchrun_env(),
        capture_output=True,
        timeout=300,
    )
    result = torchrun(2, ["-m", "textsae", "run", str(tiny_recipe), f"run.dir={two}"])
    assert result.stdout.count("| codes ") == 1  # rank 0 alone prints the table
    for name, value in load_file(str(one / "sae" / "model.safetensors")).items():
        torch.testing.assert_close(
            load_file(str(two / "sae" / "model.safetensors"))[name], value, atol=ATOL, rtol=RTOL, msg=name
        )
    reports = [json.loads((run / "report.json").read_text()) for run in (one, two)]
    assert {k: v["accuracy"] for k, v in reports[0]["eval"].items()} == {
        k: v["accuracy"] for k, v in reports[1]["eval"].items()
    }
    assert reports[0]["sae"]["training_steps"] == reports[1]["sae"]["training_steps"]
    assert not (two / "checkpoints").exists()  # rank 0 dropped the checkpoint once sae/ was saved


GUARD = """
import sys, torch
from textsae.config.schema import SAEConfig
from textsae.distributed import setup
from textsae.sae import build_sae
from textsae.train.step_in_backward import StepInBackward
rank = setup("cpu").rank
torch.manual_seed(0)
sae = build_sae(SAEConfig(n_latents=16, k=2), 8)
parameters = list(sae.parameters())
if rank == 1:
    parameters.reverse()  # rank 1 numbers the same parameters otherwise: its first reduction is another tensor's
StepInBackward(sae, torch.optim.Adam(parameters), parameters, reduce_gradients=True)
try:
    sae.loss(sae.train()(torch.randn(4, 8))).total.backward()
except RuntimeError as error:
    open(sys.argv[1] + f"/rank{rank}.txt", "w").write(str(error))
import os
os._exit(0)  # the guard left a reduction half done on purpose: a teardown of the group would wait on it or abort
"""


def test_ranks_whose_backward_reaches_other_parameters_stop_with_a_clear_error(tmp_path: Path) -> None:
    script = tmp_path / "guard.py"
    script.write_text(GUARD)
    torchrun(2, [str(script), str(tmp_path)])
    for rank in range(2):
        assert "reached different parameters" in (tmp_path / f"rank{rank}.txt").read_text()
