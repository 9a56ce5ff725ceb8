"""A manifest is data: its file names cannot point outside the folder it describes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from textsae.store.manifest import MANIFEST_NAME, IncompleteArtifactError, read_manifest, write_manifest


@pytest.mark.parametrize("name", ["../outside.bin", "/etc/hostname", "..", "", 7, None, "sub/inner.bin"])
def test_entry_names_must_be_plain_file_names(tmp_path: Path, name: object) -> None:
    folder = tmp_path / "artefact"
    folder.mkdir()
    (folder / "a.bin").write_bytes(b"abc")
    (tmp_path / "outside.bin").write_bytes(b"abc")
    write_manifest(folder, [folder / "a.bin"], {"kind": "test"})
    manifest = json.loads((folder / MANIFEST_NAME).read_text(encoding="utf-8"))
    manifest["files"][0]["name"] = name
    (folder / MANIFEST_NAME).write_text(json.dumps(manifest), encoding="utf-8")
    with pytest.raises(IncompleteArtifactError, match="expected a plain file name"):
        read_manifest(folder, verify_hashes=True)
