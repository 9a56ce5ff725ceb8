"""`textsae export --to sparsify | saelens`: the folded weights give textsae's codes and reconstructions.

sparsify is loaded with its own ``SparseCoder.load_from_disk`` (installed for the tests with ``--no-deps``); SAELens is
not installed here, so its folder is checked against its documented v6 layout and its documented TopK forward pass.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

from textsae.artifacts import load_featurizer_artifact, load_sae_artifact
from textsae.cli.main import main
from textsae.config.schema import SAEConfig
from textsae.errors import UserError
from textsae.export.sae_libraries import export_sae_library, raw_space_weights
from textsae.sae import DataShape, build_sae


@pytest.fixture(scope="module")
def hidden_run(tmp_path_factory: pytest.TempPathFactory, tiny_corpus_dir: Path, tiny_bert_dir: Path) -> Path:
    folder = tmp_path_factory.mktemp("hidden_run")
    recipe = folder / "tiny_dense.yaml"
    recipe.write_text(
        "defaults: [sae/topk, train/cpu_small, eval/dense_probe]\n"
        f"data:\n  path: {tiny_corpus_dir}\n"
        f"featurizer:\n  kind: hidden_states\n  model: {tiny_bert_dir}\n  batch_size: 32\n"
        "sae:\n  n_latents: 64\n  k: 6\n  decoder_init: data\n"
        "runtime:\n  progress: false\n  device: cpu\ntrain:\n  epochs: 3\n  batch_size: 32\n",
        encoding="utf-8",
    )
    assert main(["train", str(recipe), f"run.dir={folder / 'run'}", "-q"]) == 0
    return folder / "run"


def _inputs_and_codes(run: Path, tiny_corpus_dir: Path) -> tuple[torch.Tensor, np.ndarray, torch.Tensor]:
    texts = pd.read_parquet(tiny_corpus_dir / "test.parquet")["text"].tolist()[:60]
    features = torch.from_numpy(load_featurizer_artifact(run / "featurizer").transform(texts))
    sae = load_sae_artifact(run / "sae")
    with torch.no_grad():
        codes = sae.encode(features)
        return features, codes.numpy(), sae.decode(codes)


def test_sparsify_loads_the_export_and_gives_the_runs_codes(
    hidden_run: Path, tiny_corpus_dir: Path, tmp_path: Path
) -> None:
    sparsify = pytest.importorskip("sparsify")
    out = tmp_path / "sparsify"
    assert main(["export", str(hidden_run), "--to", "sparsify", "--out", str(out), "-q"]) == 0
    coder = sparsify.SparseCoder.load_from_disk(out)
    features, ours, our_reconstruction = _inputs_and_codes(hidden_run, tiny_corpus_dir)
    with torch.no_grad():
        top_acts, top_indices, _ = coder.encode(features)
        theirs = torch.zeros(len(features), coder.num_latents).scatter(1, top_indices, top_acts).numpy()
        their_reconstruction = coder.decode(top_acts, top_indices)
    assert theirs.shape == ours.shape == (60, 64) and coder.cfg.k == 6
    assert np.array_equal(theirs != 0, ours != 0)  # the same active latents in every document
    np.testing.assert_allclose(theirs, ours, atol=1e-5)
    torch.testing.assert_close(their_reconstruction, our_reconstruction, atol=1e-5, rtol=1e-5)


SAELENS_CONFIG_KEYS = {  # SAELens v6 SAEConfig fields plus TopKSAEConfig's k
    "architecture",
    "d_in",
    "d_sae",
    "k",
    "dtype",
    "device",
    "apply_b_dec_to_input",
    "normalize_activations",
    "reshape_activations",
    "meta",
}


def test_the_saelens_layout_and_its_topk_forward_pass_give_the_runs_codes(
    hidden_run: Path, tiny_corpus_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "saelens"
    assert main(["export", str(hidden_run), "--to", "saelens", "--out", str(out), "-q"]) == 0
    config = json.loads((out / "cfg.json").read_text(encoding="utf-8"))
    assert set(config) == SAELENS_CONFIG_KEYS and config["architecture"] == "topk"
    assert (config["d_in"], config["d_sae"], config["k"]) == (32, 64, 6)
    weights = load_file(str(out / "sae_weights.safetensors"))
    assert {name: tuple(t.shape) for name, t in weights.items()} == {
        "W_enc": (32, 64),
        "b_enc": (64,),
        "W_dec": (64, 32),
        "b_dec": (32,),
    }
    features, ours, our_reconstruction = _inputs_and_codes(hidden_run, tiny_corpus_dir)
    # SAELens' TopKSAE: hidden_pre = (x - b_dec) @ W_enc + b_enc; top k of hidden_pre, ReLU'd; x̂ = z @ W_dec + b_dec.
    hidden_pre = (features - weights["b_dec"]) @ weights["W_enc"] + weights["b_enc"]
    top = hidden_pre.topk(config["k"], dim=-1)
    theirs = torch.zeros_like(hidden_pre).scatter(-1, top.indices, top.values.relu())
    assert np.array_equal(theirs.numpy() != 0, ours != 0)
    np.testing.assert_allclose(theirs.numpy(), ours, atol=1e-5)
    torch.testing.assert_close(theirs @ weights["W_dec"] + weights["b_dec"], our_reconstruction, atol=1e-5, rtol=1e-5)


def test_a_tfidf_run_is_refused_in_one_line(
    tmp_path: Path, tiny_corpus_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(
        "defaults: [featurizer/tfidf_small, sae/topk, train/cpu_small]\n"
        f"data:\n  path: {tiny_corpus_dir}\nfeaturizer:\n  min_df: 1\nsae:\n  n_latents: 32\n  k: 4\n"
        "runtime:\n  progress: false\n  device: cpu\ntrain:\n  steps: 3\n  batch_size: 32\n",
        encoding="utf-8",
    )
    assert main(["train", str(recipe), f"run.dir={tmp_path / 'run'}", "-q"]) == 0
    capsys.readouterr()
    assert main(["export", str(tmp_path / "run"), "--to", "sparsify", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Only hidden-states runs export to sparsify" in err[0] and "--to codebook" in err[0]
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize(
    ("settings", "problem"),
    [
        ({"architecture": "relu_l1", "l1": 1.0, "k": None}, "sae.architecture='relu_l1'"),
        ({"dense_latents": 2}, "sae.dense_latents=2"),
        ({"adaptive_k": "input_nnz"}, "sae.adaptive_k='input_nnz'"),
    ],
)
def test_what_the_libraries_cannot_express_is_named(settings: dict, problem: str, tmp_path: Path) -> None:
    cfg = SAEConfig(
        **{k: v for k, v in {"architecture": "topk", "n_latents": 16, "k": 4, **settings}.items() if v is not None}
    )
    sae = build_sae(cfg, 8, DataShape.of(torch.rand(64, 8).numpy(), None))
    with pytest.raises(UserError, match=f"cannot be exported to saelens: .*{problem}"):
        export_sae_library(sae, tmp_path / "out", "saelens")
    assert not (tmp_path / "out").exists()


def test_folded_weights_reconstruct_like_the_sae_on_raw_input() -> None:
    torch.manual_seed(0)
    x = torch.randn(40, 8) * 3 + 1
    sae = build_sae(SAEConfig(architecture="topk", n_latents=16, k=4), 8, DataShape.of(x.numpy(), None))
    with torch.no_grad():
        sae.input_shift.copy_(torch.randn(8))
        sae.input_scale.copy_(torch.rand(8) + 0.5)
        weights = raw_space_weights(sae, target="test")
        pre = (x - weights["b_dec"]) @ weights["W_enc"] + weights["b_enc"]
        top = pre.topk(4, dim=-1)
        codes = torch.zeros_like(pre).scatter(-1, top.indices, top.values.relu())
        torch.testing.assert_close(codes, sae.encode(x), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(codes @ weights["W_dec"] + weights["b_dec"], sae.decode(codes), atol=1e-4, rtol=1e-5)
