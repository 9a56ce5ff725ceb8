"""One room per component: each architecture and featurizer owns its keys; registries drive the schema; moved keys
and earlier run directories keep working."""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path

import pytest
import torch
import yaml

from tests.conftest import REPO
from textsae.config.compose import build_saved_config, component_sections, load_recipe
from textsae.config.schema import FeaturizerConfig, SAEConfig, config_keys_of, to_dict
from textsae.errors import ConfigError
from textsae.estimators import _with_moved_keys
from textsae.featurize.base import FEATURIZERS
from textsae.paths import config_hash, run_paths
from textsae.sae import SAE_REGISTRY, load_sae

QUICKSTART = REPO / "recipes" / "quickstart.yaml"
OTHER_ARCHITECTURES_KEYS = {"l1", "beta", "rho", "code_threshold", "l0", "threshold_init", "bandwidth"}


@pytest.fixture
def notes(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.WARNING, logger="textsae")
    return caplog


def _note_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith("note:")]


@pytest.mark.parametrize(
    ("section", "name"), [("sae", n) for n in SAE_REGISTRY] + [("featurizer", n) for n in FEATURIZERS]
)
def test_every_registered_component_has_a_preset_and_its_own_config_class(section: str, name: str) -> None:
    base = component_sections()[section]
    variant = base.variant(name)
    assert issubclass(variant, base) and variant is not base
    presets = [p for p in (REPO / "configs" / section).glob("*.yaml") if f"{base.selector}: {name}\n" in p.read_text()]
    assert presets, f"no configs/{section}/*.yaml selects {section}.{base.selector}={name}"
    for preset in presets:
        keys = {line.split(":")[0] for line in preset.read_text().splitlines() if line and not line.startswith("#")}
        assert keys <= set(config_keys_of(variant)), (preset, keys - set(config_keys_of(variant)))


def test_show_of_a_topk_recipe_lists_no_keys_of_other_architectures() -> None:
    config = load_recipe(QUICKSTART)
    sae_keys = set(to_dict(config)["sae"])
    assert "k" in sae_keys and not sae_keys & OTHER_ARCHITECTURES_KEYS
    assert not {"model", "layers", "pooling", "vector_column"} & set(to_dict(config)["featurizer"])
    assert {"device", "precision", "threads", "progress"} <= set(to_dict(config)["runtime"])
    assert not {"device", "progress", "threads", "autocast"} & set(to_dict(config)["train"])


def test_changing_the_architecture_on_the_command_line_drops_the_old_keys_with_one_note(
    notes: pytest.LogCaptureFixture,
) -> None:
    config = load_recipe(
        QUICKSTART, ["sae.architecture=relu_l1", "sae.l1=0.5", "train.dense_init=learned", "train.label_head=codes"]
    )
    assert type(config.sae).__name__ == "ReLUL1Config" and config.sae.l1 == 0.5
    assert config.sae.n_latents == 2048  # a shared key the recipe set stays
    lines = _note_lines(notes)
    assert len(lines) == 1 and "sets sae.architecture=relu_l1 (was topk)" in lines[0]
    assert "sae.k" in lines[0] and "sae.dense_latents" in lines[0]


def test_changing_the_featurizer_kind_drops_the_tfidf_keys(notes: pytest.LogCaptureFixture) -> None:
    config = load_recipe(QUICKSTART, ["featurizer.kind=vectors", "data.path=/tmp/x.parquet"])
    assert type(config.featurizer).__name__ == "VectorsConfig" and config.featurizer.output == "dense"
    assert any("featurizer.max_features" in line for line in _note_lines(notes))


def test_a_key_of_another_architecture_is_one_line_naming_its_owner() -> None:
    with pytest.raises(ConfigError) as info:
        load_recipe(QUICKSTART, ["sae.rho=0.1"])
    (line,) = info.value.problems
    assert "sae.rho is a key of sae.architecture=sigmoid_kl, not of sae.architecture=topk" in line
    with pytest.raises(ConfigError, match="sae.dense_latents is a key of sae.architecture=topk"):
        SAEConfig(architecture="batchtopk", dense_latents=1)
    with pytest.raises(ConfigError, match="'sae.architecture' value must be one of .*did you mean 'jumprelu'"):
        SAEConfig(architecture="jumprelux")


@pytest.mark.parametrize(
    ("override", "key", "value"),
    [
        ("train.device=cpu", "device", "cpu"),
        ("train.threads=1", "threads", 1),
        ("train.progress=false", "progress", False),
        ("train.autocast=none", "precision", "fp32"),
        ("featurizer.dtype=bf16", "precision", "bf16"),
    ],
)
def test_moved_keys_still_work_with_one_note(
    notes: pytest.LogCaptureFixture, override: str, key: str, value: object
) -> None:
    config = load_recipe(QUICKSTART, [override])
    assert getattr(config.runtime, key) == value
    (line,) = _note_lines(notes)
    assert f"{override.split('=')[0]} is now runtime.{key}" in line


def test_moved_keys_in_a_recipe_file_work_too(tmp_path: Path, notes: pytest.LogCaptureFixture) -> None:
    recipe = tmp_path / "old.yaml"
    recipe.write_text(QUICKSTART.read_text() + "  device: cpu\n  progress: false\n", encoding="utf-8")
    config = load_recipe(recipe, [f"data.path={tmp_path}"])
    assert (config.runtime.device, config.runtime.progress) == ("cpu", False)
    assert len(_note_lines(notes)) == 2


def test_runtime_changes_no_result_so_only_precision_and_device_change_the_run_hash() -> None:
    base = config_hash(load_recipe(QUICKSTART))
    assert config_hash(load_recipe(QUICKSTART, ["runtime.threads=1", "runtime.progress=false"])) == base
    assert config_hash(load_recipe(QUICKSTART, ["runtime.precision=bf16"])) != base


OLD_RUN_CONFIG = {  # what textsae 0.1 wrote to a run's config.yaml: every key of every component, device in train
    "name": "old",
    "data": {"path": "/somewhere", "text_column": "text"},
    "featurizer": {"kind": "tfidf", "vector_column": "vector", "max_features": 5000, "model": None, "device": "auto"},
    "sae": {"architecture": "topk", "n_latents": 64, "k": 8, "l1": 1.0, "beta": 1.0, "rho": 0.05, "adaptive_k": "auto"},
    "train": {"steps": 10, "device": "cpu", "autocast": "none", "threads": 1, "progress": False},
}


def test_a_run_directory_config_of_the_earlier_layout_still_loads(notes: pytest.LogCaptureFixture) -> None:
    config = build_saved_config(json.loads(json.dumps(OLD_RUN_CONFIG)))
    assert config.sae.k == 8 and not hasattr(config.sae, "l1") and config.featurizer.max_features == 5000
    assert (config.runtime.device, config.runtime.precision, config.runtime.threads) == ("cpu", "fp32", 1)
    assert not _note_lines(notes)  # reading an old run is not the user's doing: no notes


def test_an_sae_folder_of_the_earlier_layout_still_loads(tmp_path: Path) -> None:
    sae = SAEConfig(architecture="relu_l1", n_latents=6, l1=0.3)
    from textsae.sae import build_sae

    model = build_sae(sae, 4)
    model.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    config["sae"].update(k=32, adaptive_k="auto", beta=1.0, rho=0.05, dense_latents=0)  # the flat layout's extra keys
    (tmp_path / "config.json").write_text(json.dumps(config))
    loaded = load_sae(tmp_path)
    assert loaded.cfg == model.cfg
    torch.testing.assert_close(loaded.W_enc, model.W_enc)


def test_calling_a_base_config_builds_the_registered_variant() -> None:
    assert type(SAEConfig()).__name__ == "TopKConfig"
    assert type(FeaturizerConfig(kind="hidden_states")).__name__ == "HiddenStatesConfig"
    assert FeaturizerConfig().output == "sparse" and FeaturizerConfig(kind="hidden_states").stored


def test_a_run_directory_of_the_earlier_layout_is_found_again_by_its_recipe(
    tiny_recipe: Path, tmp_path: Path, notes: pytest.LogCaptureFixture
) -> None:
    config = load_recipe(tiny_recipe, [f"run.root={tmp_path}", "runtime.device=cpu", "runtime.progress=false"])
    tree = to_dict(config)
    runtime = tree.pop("runtime")  # the earlier layout: runtime keys under train, every architecture's keys
    tree["train"].update(device=runtime["device"], progress=runtime["progress"], autocast="auto", threads="auto")
    tree["sae"].update(l1=1.0, beta=1.0, rho=0.05, code_threshold=0.5)
    earlier = tmp_path / config.name / "0123456789"
    earlier.mkdir(parents=True)
    (earlier / "config.yaml").write_text(yaml.safe_dump(tree), encoding="utf-8")
    (tmp_path / config.name / "fedcba9876").mkdir()  # another run of the recipe, with nothing in it: skipped
    assert run_paths(config).root == earlier
    (line,) = _note_lines(notes)
    assert str(earlier) in line and "earlier textsae" in line
    other = load_recipe(tiny_recipe, [f"run.root={tmp_path}", "sae.k=3"])
    assert run_paths(other).root != earlier  # a different config is never matched


def test_two_moved_keys_that_now_name_one_setting_must_agree(tmp_path: Path) -> None:
    recipe = tmp_path / "both.yaml"
    recipe.write_text(
        QUICKSTART.read_text() + "  device: cpu\nfeaturizer:\n  device: cuda\n  dtype: fp16\n", encoding="utf-8"
    )
    with pytest.raises(ConfigError) as info:
        load_recipe(recipe, [f"data.path={tmp_path}"])
    (line,) = info.value.problems
    assert "train.device=cpu" in line and "featurizer.device=cuda" in line and "runtime.device" in line
    saved = json.loads(json.dumps(OLD_RUN_CONFIG))
    saved["featurizer"].update(device="cuda", dtype="auto")  # 0.1 saved both devices; the one set differs from auto
    saved["train"]["device"] = "auto"
    assert build_saved_config(saved).runtime.device == "cuda"


def test_a_section_override_and_an_estimator_accept_moved_keys_too(notes: pytest.LogCaptureFixture) -> None:
    config = load_recipe(QUICKSTART, ["train={device: cpu, steps: 5}"])
    assert (config.runtime.device, config.train.steps) == ("cpu", 5)
    settings = _with_moved_keys({"threads": 1, "steps": 3}, {"device": "cpu", "dtype": "fp32", "min_df": 1})
    assert settings == {
        "train": {"steps": 3},
        "featurizer": {"min_df": 1},
        "runtime": {"threads": 1, "device": "cpu", "precision": "fp32"},
    }


def test_a_config_whose_selector_names_another_class_is_refused() -> None:
    with pytest.raises(ConfigError, match="sae.architecture='relu_l1' is not what a TopKConfig holds"):
        dataclasses.replace(SAEConfig(k=8), architecture="relu_l1")
