"""Encoding features into code shards: an interrupted encode resumes to the same codes, and only with the same input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from textsae.config.schema import EncodeConfig, SAEConfig
from textsae.encode import encode_features, encode_rows
from textsae.errors import UserError
from textsae.sae import build_sae
from textsae.store.codes import load_codes


def _sae_and_features() -> tuple[torch.nn.Module, sp.csr_matrix]:
    rng = np.random.default_rng(0)
    features = sp.csr_matrix((rng.random((23, 12)) * (rng.random((23, 12)) < 0.4)).astype(np.float32))
    torch.manual_seed(0)
    return build_sae(SAEConfig(n_latents=16, k=3), 12).eval(), features


def _killed_at(features: sp.csr_matrix, row: int):
    """``get_rows`` for :func:`encode_rows` that is interrupted when it reaches ``row``."""

    def get_rows(begin: int, end: int) -> sp.csr_matrix:
        if begin >= row:
            raise KeyboardInterrupt
        return features[begin:end]

    return get_rows


def test_interrupted_encode_resumes_to_the_same_codes(tmp_path: Path) -> None:
    sae, features = _sae_and_features()
    cfg = EncodeConfig(batch_size=2, shard_docs=4)
    encode_features(sae, features, tmp_path / "whole", cfg, progress=False)
    with pytest.raises(KeyboardInterrupt):
        encode_rows(sae, features.shape[0], _killed_at(features, 10), tmp_path / "resumed", cfg, progress=False)
    assert len(list((tmp_path / "resumed").glob("shard-*.npz"))) == 2  # rows 0-7
    encode_features(sae, features, tmp_path / "resumed", cfg, progress=False)
    whole, resumed = load_codes(tmp_path / "whole"), load_codes(tmp_path / "resumed")
    assert whole.shape == (23, 16) and (whole != resumed).nnz == 0
    with torch.no_grad():  # ... and both are the SAE's codes of the rows, stored as fp16
        expected = sae.encode(torch.from_numpy(features.toarray())).half().float().numpy()
    np.testing.assert_array_equal(whole.toarray(), expected)


def test_interrupted_encode_is_not_resumed_with_other_input(tmp_path: Path) -> None:
    sae, features = _sae_and_features()
    cfg = EncodeConfig(batch_size=4, shard_docs=4)
    with pytest.raises(KeyboardInterrupt):
        encode_rows(sae, features.shape[0], _killed_at(features, 8), tmp_path / "codes", cfg, progress=False)
    with pytest.raises(UserError, match=r"different settings: meta=.*'input_docs': 23"):
        encode_features(sae, features[:6], tmp_path / "codes", cfg, progress=False)
    encode_features(sae, features[:6], tmp_path / "codes", cfg, progress=False, overwrite=True)
    assert load_codes(tmp_path / "codes").shape == (6, 16)


def test_encode_k_writes_k_entries_per_row_and_records_k(tmp_path: Path) -> None:
    from textsae.store.codes import codes_info

    torch.manual_seed(0)
    sae = build_sae(SAEConfig(architecture="topk", n_latents=32, k=2, multi_topk=True), 6)
    with torch.no_grad():
        sae.b_enc.fill_(10.0)  # every pre-activation positive, so every row has exactly k entries
    features = np.random.default_rng(0).random((9, 6)).astype(np.float32)
    out = encode_features(sae, features, tmp_path / "codes", EncodeConfig(batch_size=4, k=5), progress=False)
    codes = load_codes(out)
    assert (codes.getnnz(axis=1) == 5).all()
    with torch.no_grad():
        expected = sae.encode(torch.from_numpy(features), k=5).half().float().numpy()
    np.testing.assert_array_equal(codes.toarray(), expected)  # the 5 largest, not any 5
    assert codes_info(out)["k"] == 5
    with pytest.raises(UserError, match="inference 'k'"):
        encode_features(sae, features, tmp_path / "too_many", EncodeConfig(k=33), progress=False)
