"""Run artefacts: a folder interrupted while it is being rewritten must not read as complete."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from textsae import artifacts


def test_interrupted_rewrite_is_not_complete(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "features"
    artifacts.save_feature_matrices(folder, {"train": sp.csr_matrix(np.eye(3, dtype=np.float32))}, {"n_features": 3})
    assert artifacts.is_complete(folder)

    def killed(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(artifacts, "write_manifest", killed)  # killed after the files, before the manifest
    with pytest.raises(KeyboardInterrupt):
        # Same byte size as before: the old manifest's size check alone would accept the new file.
        artifacts.save_feature_matrices(
            folder, {"train": sp.csr_matrix(2 * np.eye(3, dtype=np.float32))}, {"n_features": 3}
        )
    assert not artifacts.is_complete(folder)
