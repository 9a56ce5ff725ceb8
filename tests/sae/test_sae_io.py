"""save_pretrained / from_pretrained round trip and failures on bad files."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from tests.conftest import ARCHITECTURES, sae_config
from textsae.config.schema import SAEConfig
from textsae.errors import UserError
from textsae.sae import SAE_REGISTRY, SparseAutoencoder, build_sae, load_sae
from textsae.sae.base import CONFIG_NAME, WEIGHTS_NAME

ARCHS = ARCHITECTURES


def _trained_sae(arch: str) -> SparseAutoencoder:
    torch.manual_seed(0)
    sae = build_sae(sae_config(arch, n_latents=12, k=3), d_in=6)
    x = torch.randn(10, 6)
    sae.init_from_data(x)
    sae(x)  # batchtopk: sets its threshold
    return sae


@pytest.mark.parametrize("arch", ARCHS)
def test_round_trip_gives_identical_encode(arch: str, tmp_path: Path) -> None:
    sae = _trained_sae(arch)
    sae.save_pretrained(tmp_path / "sae")
    loaded = load_sae(tmp_path / "sae")
    assert type(loaded) is SAE_REGISTRY[arch]
    assert loaded.cfg == sae.cfg and loaded.d_in == 6 and not loaded.training
    x = torch.randn(4, 6)
    torch.testing.assert_close(loaded.encode(x), sae.encode(x), rtol=0, atol=0)
    for name, tensor in sae.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[name], tensor, rtol=0, atol=0)
    meta = json.loads((tmp_path / "sae" / CONFIG_NAME).read_text())
    assert meta["architecture"] == arch and meta["d_in"] == 6
    assert meta["sae"] == dataclasses.asdict(sae.cfg)  # the architecture's own keys only
    assert ("k" in meta["sae"]) == (arch in ("topk", "batchtopk"))
    assert "torch" in meta["versions"]
    assert sorted(p.name for p in (tmp_path / "sae").iterdir()) == sorted([CONFIG_NAME, WEIGHTS_NAME])


def test_from_pretrained_on_subclass_checks_architecture(tmp_path: Path) -> None:
    _trained_sae("relu_l1").save_pretrained(tmp_path)
    with pytest.raises(UserError, match="not a TopKSAE"):
        SAE_REGISTRY["topk"].from_pretrained(tmp_path)


def _corrupt(path: Path) -> None:
    path.write_bytes(b"this is not a safetensors file at all")


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _foreign(path: Path) -> None:
    save_file({"encoder.weight": torch.zeros(2, 2)}, str(path))


def _wrong_shape(path: Path) -> None:
    sae = build_sae(SAEConfig(architecture="topk", n_latents=12, k=3), d_in=7)
    save_file({k: v.contiguous() for k, v in sae.state_dict().items()}, str(path))


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (_corrupt, "not a readable safetensors"),
        (_truncate, "not a readable safetensors"),
        (_foreign, "Missing .*W_dec"),
        (_wrong_shape, "tensor 'W_enc' has shape \\(7, 12\\)"),
        (lambda p: p.unlink(), "weights file not found"),
    ],
    ids=["corrupt", "truncated", "foreign", "wrong_shape", "missing"],
)
def test_bad_weights_file_raises_user_error_naming_it(damage, message: str, tmp_path: Path) -> None:
    _trained_sae("topk").save_pretrained(tmp_path)
    weights = tmp_path / WEIGHTS_NAME
    damage(weights)
    with pytest.raises(UserError, match=re.escape(str(weights))) as info:
        load_sae(tmp_path)
    assert re.search(message, str(info.value))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "config file not found"),
        ("{not json", "not a readable JSON"),
        (json.dumps({"architecture": "topk"}), "expected a JSON object with keys"),
        (
            json.dumps({"architecture": "nope", "d_in": 6, "sae": {"architecture": "nope"}}),
            "unknown SAE architecture|sae.architecture",
        ),
    ],
    ids=["missing", "not_json", "missing_keys", "unknown_arch"],
)
def test_bad_config_file_raises_user_error_naming_it(content: str | None, message: str, tmp_path: Path) -> None:
    _trained_sae("topk").save_pretrained(tmp_path)
    config = tmp_path / CONFIG_NAME
    if content is None:
        config.unlink()
    else:
        config.write_text(content)
    with pytest.raises(UserError, match=re.escape(str(config))) as info:
        load_sae(tmp_path)
    assert re.search(message, str(info.value))
