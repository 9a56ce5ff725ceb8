"""Runtime settings of training: threads and memory reuse change how fast a run goes, never what it computes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import QUIET_CPU
from textsae import runtime
from textsae.config.schema import RuntimeConfig, SAEConfig, TrainConfig
from textsae.errors import ConfigError, UserError
from textsae.sae import build_sae
from textsae.train import trainer as trainer_module
from textsae.train.trainer import Trainer


def _train(tmp_path: Path, **runtime_settings: object) -> tuple[Trainer, dict[str, torch.Tensor]]:
    features = np.random.default_rng(0).standard_normal((96, 12)).astype(np.float32)
    torch.manual_seed(0)
    sae = build_sae(SAEConfig(n_latents=24, k=3), 12)
    runtime_cfg = RuntimeConfig(**{"progress": False, "device": "cpu", **runtime_settings})
    cfg = TrainConfig(steps=6, batch_size=32, warmup_steps=1)
    trainer = Trainer(sae, cfg, features, checkpoint_path=tmp_path / "ckpt.safetensors", runtime=runtime_cfg)
    trainer.train()
    return trainer, {name: value.clone() for name, value in sae.state_dict().items()}


@pytest.fixture
def restore_threads():  # type: ignore[no-untyped-def]
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_threads_setting_is_applied(tmp_path: Path, restore_threads: None) -> None:
    _train(tmp_path, threads=1)
    assert torch.get_num_threads() == 1


def test_memory_reuse_follows_the_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[bool] = []
    monkeypatch.setattr(trainer_module, "keep_freed_memory", lambda: calls.append(True) or True)
    _, reused = _train(tmp_path / "a", reuse_memory=True)
    assert calls == [True]
    _, fresh = _train(tmp_path / "b", reuse_memory=False)
    assert calls == [True]
    for name, value in reused.items():
        assert torch.equal(value, fresh[name]), name


def test_a_resume_may_change_threads(tmp_path: Path, restore_threads: None) -> None:
    trainer, _ = _train(tmp_path, threads=1)
    assert (tmp_path / "ckpt.safetensors").exists()
    fingerprint = trainer._fingerprint()
    trainer.runtime = RuntimeConfig(threads=2, reuse_memory=False, device="cpu")
    assert trainer._fingerprint() == fingerprint


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "two"])
def test_bad_threads_are_named(bad: object) -> None:
    with pytest.raises(ConfigError, match="runtime.threads must be 'auto' or an int >= 1"):
        RuntimeConfig(threads=bad)  # type: ignore[arg-type]
    with pytest.raises(UserError, match="runtime.threads"):
        runtime.set_threads(bad)  # type: ignore[arg-type]


def test_keep_freed_memory_reports_whether_it_applies() -> None:
    assert isinstance(runtime.keep_freed_memory(), bool)
    assert runtime.keep_freed_memory() == runtime.keep_freed_memory()  # idempotent


@pytest.mark.parametrize("how", ["lr", "nan_weights"])
def test_divergence_stops_with_one_line_and_saves_nothing(tmp_path: Path, how: str) -> None:
    features = np.random.default_rng(0).standard_normal((96, 12)).astype(np.float32)
    torch.manual_seed(0)
    sae = build_sae(SAEConfig(n_latents=24, k=3), 12)
    lr = 1e12 if how == "lr" else 1e-3
    cfg = TrainConfig(steps=40, batch_size=32, warmup_steps=1, lr=lr, checkpoint_every=2)
    checkpoint = tmp_path / "ckpt.safetensors"
    trainer = Trainer(sae, cfg, features, checkpoint_path=checkpoint, runtime=QUIET_CPU)
    if how == "nan_weights":
        original = trainer.train_step

        def poisoned_step() -> dict[str, torch.Tensor]:
            if trainer.step == 5:
                with torch.no_grad():
                    sae.W_dec[0, 0] = float("nan")
            return original()

        trainer.train_step = poisoned_step  # type: ignore[method-assign]
    with pytest.raises(UserError, match=r"Training diverged at step \d+: .*train\.lr=") as caught:
        trainer.train()
    assert "\n" not in str(caught.value)
    assert not checkpoint.exists()


def test_a_checkpoint_of_other_data_is_not_resumed(tmp_path: Path) -> None:
    """Same config and shape, another corpus: the data fingerprint keeps the checkpoint out."""
    features = np.random.default_rng(0).standard_normal((96, 12)).astype(np.float32)
    cfg = TrainConfig(steps=40, batch_size=32, warmup_steps=1, checkpoint_every=2)
    checkpoint = tmp_path / "ckpt.safetensors"

    def trainer(data: str) -> Trainer:
        torch.manual_seed(0)
        sae = build_sae(SAEConfig(n_latents=24, k=3), 12)
        return Trainer(sae, cfg, features, checkpoint_path=checkpoint, data_fingerprint=data, runtime=QUIET_CPU)

    trainer("corpus A").train()
    assert checkpoint.exists()
    with pytest.raises(UserError, match="written for a different config or data"):
        trainer("corpus B").train()
