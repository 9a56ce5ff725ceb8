"""``textsae show | validate | ls``: look at recipes and presets without running them."""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any

from textsae.config.compose import component_sections, dump_yaml, find_configs_dir, load_recipe
from textsae.config.schema import config_keys_of


def add_parsers(subparsers: Any, common: argparse.ArgumentParser, formatter: type) -> None:
    """Add the ``show``, ``validate`` and ``ls`` verbs to ``subparsers`` (``common``: the shared ``--debug``/``--quiet`` options)."""
    show = subparsers.add_parser(
        "show",
        help="print the resolved config of a recipe",
        description="Prints the recipe after presets and overrides are applied: the keys you can override.",
        parents=[common],
        formatter_class=formatter,
        epilog="example:\n  textsae show recipes/imdb_tfidf_topk.yaml sae.k=64",
    )
    show.add_argument("recipe", help="recipe YAML file")
    show.add_argument("overrides", nargs="*", help="config overrides key=value")
    show.set_defaults(handler=_show)

    validate = subparsers.add_parser(
        "validate",
        help="check recipes and presets without running them",
        description="Loads each recipe (default: every YAML under recipes/) and reports every problem at once.",
        parents=[common],
        formatter_class=formatter,
        epilog="example:\n  textsae validate recipes/quickstart.yaml sae.k=0",
    )
    validate.add_argument("recipe", nargs="?", help="one recipe (default: all recipes)")
    validate.add_argument("overrides", nargs="*", help="config overrides key=value")
    validate.set_defaults(handler=_validate)

    ls = subparsers.add_parser(
        "ls",
        help="list recipes and presets",
        description="Lists shipped recipes and presets.",
        parents=[common],
        formatter_class=formatter,
    )
    ls.set_defaults(handler=_ls)


def _show(args: argparse.Namespace) -> int:
    from textsae.paths import run_paths

    config = load_recipe(args.recipe, args.overrides)
    print(dump_yaml(config), end="")
    print(f"# run directory: {run_paths(config).root}")
    return 0


def _recipes_dir() -> Path:
    return find_configs_dir(Path.cwd()).parent / "recipes"


def _validate(args: argparse.Namespace) -> int:
    from textsae.errors import ConfigError

    recipes = [Path(args.recipe)] if args.recipe else sorted(_recipes_dir().rglob("*.yaml"))
    failures: list[str] = []
    for recipe in recipes:
        try:
            load_recipe(recipe, args.overrides if args.recipe else [])
            print(f"ok      {recipe}")
        except ConfigError as error:
            failures.extend(line if line.startswith(str(recipe)) else f"{recipe}: {line}" for line in error.problems)
    if failures:
        raise ConfigError(failures)
    return 0


def _ls(args: argparse.Namespace) -> int:
    configs = find_configs_dir(Path.cwd())
    print("RECIPES")
    for recipe in sorted(_recipes_dir().rglob("*.yaml")):
        print(
            f"  {recipe.relative_to(Path.cwd()) if recipe.is_relative_to(Path.cwd()) else recipe}    {_first_comment(recipe)}"
        )
    print("PRESETS (configs/<group>/<name>.yaml, used in a recipe's `defaults:` list)")
    for preset in sorted(configs.glob("*/*.yaml")):
        print(f"  {preset.parent.name}/{preset.stem:<24} {_first_comment(preset)}")
    for section, base in component_sections().items():
        print(f"{section.upper()} ({section}.{base.selector}=NAME; each with its own keys beside the shared ones)")
        shared = set(config_keys_of(base))
        for name, variant in sorted(base.variants().items()):
            own = [key for key in config_keys_of(variant) if key not in shared]
            print(f"  {name:<16} {_first_line(variant.__doc__)}  keys: {', '.join(own) or '(shared only)'}")
    return 0


def _first_line(doc: str | None) -> str:
    """A config class's summary without its leading ``section.key=name``: prefix (the listing shows the name)."""
    summary = " ".join((doc or "").strip().split("\n\n")[0].split())
    return re.sub(r"^``[a-z_.]+=[a-z_0-9]+``:\s*", "", summary)


def _first_comment(path: Path) -> str:
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            return line.lstrip("# ").strip()
    return ""
