"""Recipes and saved configs are read within limits: no alias bombs, no self-reference, no silently repeated keys."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from textsae.cli.main import main
from textsae.config.compose import load_recipe
from textsae.config.safe_yaml import MAX_ALIASES, YamlLimitError, load_yaml
from textsae.errors import ConfigError

BILLION_LAUGHS = "\n".join(
    ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    + [f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 10)}]" for i in range(8)]
)


def test_alias_bomb_is_refused_quickly() -> None:
    start = time.perf_counter()
    with pytest.raises(YamlLimitError, match="aliases|values"):
        load_yaml(BILLION_LAUGHS)
    assert time.perf_counter() - start < 5


def test_few_aliases_that_expand_hugely_are_refused() -> None:
    """Under the alias count, but 10^6 values once walked."""
    text = "a: &a [" + ", ".join(["x"] * 100) + "]\n"
    text += "b: &b [" + ", ".join(["*a"] * 100) + "]\n"
    text += "c: [" + ", ".join(["*b"] * 99) + "]\n"
    assert text.count("*") < 2 * MAX_ALIASES
    with pytest.raises(YamlLimitError):
        load_yaml(text)


def test_self_referencing_anchor_is_refused() -> None:
    with pytest.raises(YamlLimitError, match="deeper|itself"):
        load_yaml("a: &a [1, *a]")


def test_repeated_key_names_both_lines() -> None:
    with pytest.raises(YamlLimitError, match=r"key 'sae' appears twice \(lines 1 and 3\)"):
        load_yaml("sae:\n  k: 8\nsae:\n  k: 16\n")
    with pytest.raises(YamlLimitError, match="'k' appears twice"):
        load_yaml("sae:\n  k: 8\n  k: 16\n")


def test_ordinary_yaml_with_a_few_aliases_loads() -> None:
    value = load_yaml("base: &b {k: 8}\nsae: *b\nlist: [1, 2, {x: y}]\n")
    assert value == {"base": {"k": 8}, "sae": {"k": 8}, "list": [1, 2, {"x": "y"}]}
    assert load_yaml("") is None


def test_recipe_and_override_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    recipe = tmp_path / "r.yaml"
    recipe.write_text("name: r\nsae:\n  k: 8\nsae:\n  k: 16\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"r\.yaml: refused: key 'sae' appears twice"):
        load_recipe(recipe)
    assert main(["validate", str(recipe)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "appears twice" in err[0]
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text("name: bomb\n" + BILLION_LAUGHS + "\n", encoding="utf-8")
    assert main(["validate", str(bomb)]) == 2
    assert "refused" in capsys.readouterr().err
