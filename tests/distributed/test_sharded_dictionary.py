"""``runtime.shard_dictionary=latents``: a TopK SAE's latents split across 2 gloo ranks train the one-process SAE,
write its checkpoint format, resume after a killed rank, and refuse what they cannot train."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from safetensors.torch import load_file

from tests.distributed.launch import torchrun
from tests.distributed.test_train import torchrun_env
from textsae.config.schema import RuntimeConfig, SAEConfig, TrainConfig
from textsae.distributed import World
from textsae.errors import UserError
from textsae.sae import build_sae
from textsae.train.sharded_dictionary import check_shardable
from textsae.train.trainer import Trainer

SCRIPT = str(Path(__file__).with_name("train_tiny.py"))
SHARDED = ["shard_dictionary=latents"]
PLAIN = ["topk", "auxk_coefficient=0"]

ATOL, RTOL = 2e-6, 1e-5
"""Sharded (2 ranks) against one process after 24 Adam steps on weights of magnitude <= 1. Not bitwise: the
reconstruction is a sum of the two ranks' partial decodes, and b_dec's gradient through the centring a sum of the two
blocks' parts, where one process adds the same terms in another order (observed: at most 1.5e-7)."""


def _weights(folder: Path, rank: int = 0) -> dict[str, torch.Tensor]:
    return load_file(str(folder / f"sae-rank{rank}.safetensors"))


def _one_process(out: Path, *args: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [sys.executable, SCRIPT, str(out), *args], check=True, env=torchrun_env(), capture_output=True, timeout=300
    )


def _logs(folder: Path) -> list[dict[str, float]]:
    return [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize(
    "settings",
    [PLAIN, ["topk", "auxk_coefficient=0", "k=12", "adaptive_k=input_nnz", "multi_topk=1", "dead_after=40"]],
    ids=["topk", "multi_topk-input_nnz-dead"],
)
def test_two_ranks_holding_half_the_latents_each_train_the_one_process_sae(tmp_path: Path, settings: list[str]) -> None:
    _one_process(tmp_path / "one", *settings)
    (tmp_path / "two").mkdir()
    torchrun(2, [SCRIPT, str(tmp_path / "two"), *settings, *SHARDED])
    one, two, two_other = _weights(tmp_path / "one"), _weights(tmp_path / "two"), _weights(tmp_path / "two", 1)
    assert set(one) == set(two)
    for name, value in one.items():
        assert torch.equal(two[name], two_other[name]), f"{name}: every rank gets the whole trained SAE"
        torch.testing.assert_close(two[name], value, atol=ATOL, rtol=RTOL, msg=name)
    for a, b in zip(_logs(tmp_path / "one"), _logs(tmp_path / "two"), strict=True):
        assert a["step"] == b["step"] and a["l0"] == b["l0"] and a["dead_fraction"] == b["dead_fraction"]
        assert abs(a["loss"] - b["loss"]) <= 1e-5 * abs(a["loss"]) and abs(a["fvu"] - b["fvu"]) <= 1e-5
    # the checkpoint is the unsharded one's: same tensors, same shapes, close values
    ckpt_one, ckpt_two = (load_file(str(tmp_path / run / "ckpt.safetensors")) for run in ("one", "two"))
    assert {k: v.shape for k, v in ckpt_one.items()} == {k: v.shape for k, v in ckpt_two.items()}
    for name, value in ckpt_one.items():
        torch.testing.assert_close(ckpt_two[name], value, atol=ATOL, rtol=RTOL, msg=name)


def test_a_killed_rank_resumes_sharded_and_one_process_reads_the_same_checkpoint(tmp_path: Path) -> None:
    (tmp_path / "whole").mkdir()
    torchrun(2, [SCRIPT, str(tmp_path / "whole"), *PLAIN, *SHARDED])
    kill = {"TEXTSAE_TEST_KILL_AT": "train-step#10", "TEXTSAE_TEST_KILL_RANK": "1"}
    for run in ("killed", "killed-then-one"):
        (tmp_path / run).mkdir()
        failed = torchrun(2, [SCRIPT, str(tmp_path / run), *PLAIN, *SHARDED], env=kill, check=False)
        assert failed.returncode != 0 and not (tmp_path / run / "summary.txt").exists()
    torchrun(2, [SCRIPT, str(tmp_path / "killed"), *PLAIN, *SHARDED])
    assert (tmp_path / "killed" / "summary.txt").read_text().split() == ["24", "6"]
    whole, resumed = _weights(tmp_path / "whole"), _weights(tmp_path / "killed")
    for name, value in whole.items():
        assert torch.equal(resumed[name], value), name
    assert (tmp_path / "whole" / "metrics.jsonl").read_text() == (tmp_path / "killed" / "metrics.jsonl").read_text()
    # the same format as unsharded training: one process resumes the sharded run's checkpoint
    _one_process(tmp_path / "killed-then-one", *PLAIN)
    assert (tmp_path / "killed-then-one" / "summary.txt").read_text().split() == ["24", "6"]
    for name, value in whole.items():
        torch.testing.assert_close(_weights(tmp_path / "killed-then-one")[name], value, atol=ATOL, rtol=RTOL, msg=name)


def _sae(**values: object) -> object:
    return build_sae(SAEConfig(**{"n_latents": 8, "k": 2, "auxk_coefficient": 0.0, **values}), 6)  # type: ignore[arg-type]


def test_one_process_is_refused_with_the_way_to_start_ranks() -> None:
    features = sp.csr_matrix(np.eye(6, dtype=np.float32))
    with pytest.raises(UserError, match=r"runtime.shard_dictionary=latents .* `torchrun --nproc-per-node N`"):
        Trainer(_sae(), TrainConfig(steps=2, batch_size=2), features, runtime=RuntimeConfig(shard_dictionary="latents"))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("values", "train", "key"),
    [
        ({"architecture": "relu_l1"}, {}, "sae.architecture=topk only"),
        ({"auxk_coefficient": 0.03}, {}, "sae.auxk_coefficient=0.03"),
        ({"dense_latents": 1}, {}, "sae.dense_latents=1"),
        ({"matryoshka_prefixes": [4]}, {}, r"sae.matryoshka_prefixes=\[4\]"),
        ({}, {"label_loss_weight": 0.5}, "train.label_loss_weight=0.5"),
        ({"n_latents": 9}, {}, "sae.n_latents divisible by the 2 ranks. Got 9; use e.g. 10"),
    ],
)
def test_what_the_sharded_dictionary_cannot_train_is_refused_naming_the_key(
    values: dict[str, object], train: dict[str, object], key: str
) -> None:
    if values.get("architecture") == "relu_l1":
        values = {"architecture": "relu_l1", "n_latents": 8}
        sae = build_sae(SAEConfig(**values), 6)  # type: ignore[arg-type]
    else:
        sae = _sae(**values)
    with pytest.raises(UserError, match=key):
        check_shardable(sae, TrainConfig(**train), World(rank=0, size=2))  # type: ignore[arg-type]
    check_shardable(_sae(), TrainConfig(), World(rank=1, size=2))  # a plain TopK SAE is accepted
