"""Compose a recipe: YAML presets (``defaults:``), the recipe's own keys, then ``key=value`` overrides.

Order of precedence, lowest first: dataclass defaults → presets in ``defaults:`` order → keys in the
recipe → command-line overrides. ``~key`` on the command line resets a key to its default. Every
problem (unknown key, wrong type, bad value) is collected and reported at once, each naming the
dotted key and, for unknown keys, the closest valid one.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import difflib
import math
import os
import re
import types
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, TypeGuard, Union, get_args, get_origin

import yaml

from textsae.config.safe_yaml import YamlLimitError, load_yaml
from textsae.config.schema import ComponentConfig, RecipeConfig, RuntimeConfig, config_keys_of, to_dict
from textsae.errors import ConfigError

DEFAULTS_KEY = "defaults"
PRESET_SUFFIX = ".yaml"
_PRESET_RE = re.compile(r"[A-Za-z0-9_-]+/[A-Za-z0-9_.-]+")  # GROUP/NAME: no absolute or parent paths
_SECTIONS = tuple(f.name for f in dataclasses.fields(RecipeConfig) if f.name != "name")  # preset groups

MOVED_KEYS: dict[str, tuple[str, dict[Any, Any]]] = {
    "train.device": ("runtime.device", {}),
    "train.threads": ("runtime.threads", {}),
    "train.reuse_memory": ("runtime.reuse_memory", {}),
    "train.progress": ("runtime.progress", {}),
    "train.autocast": ("runtime.precision", {"none": "fp32"}),
    "featurizer.device": ("runtime.device", {}),
    "featurizer.dtype": ("runtime.precision", {}),
}
"""Keys that moved to another section: old dotted key → (new key, old value → new value where the names
changed). The old names keep working, with one note line each."""


def is_component_base(cls: Any) -> TypeGuard[type[ComponentConfig]]:
    """Whether ``cls`` is a config base whose variant one of its keys picks (:class:`ComponentConfig`)."""
    return isinstance(cls, type) and issubclass(cls, ComponentConfig) and bool(cls.__dict__.get("_is_base"))


def _is_section(annotation: Any) -> TypeGuard[type]:
    """Whether a field's type annotation is a config dataclass (a nested section), i.e. a dataclass class."""
    return dataclasses.is_dataclass(annotation)


def component_sections() -> dict[str, type[ComponentConfig]]:
    """Recipe sections whose dataclass one of their keys picks (``sae``, ``featurizer``) → their base class."""
    hints = typing.get_type_hints(RecipeConfig)
    return {f.name: hints[f.name] for f in dataclasses.fields(RecipeConfig) if is_component_base(hints[f.name])}


def find_configs_dir(start: Path | None = None) -> Path:
    """Locate the ``configs/`` preset folder: beside or above ``start``, else beside the package."""
    above = [parent / "configs" for parent in (start, *start.parents)] if start is not None else []
    env = [Path(os.environ["TEXTSAE_CONFIGS"])] if os.environ.get("TEXTSAE_CONFIGS") else []
    beside_package = [Path(__file__).resolve().parents[2] / "configs"]
    for candidate in above + env + beside_package:
        if candidate.is_dir():
            return candidate
    looked = [f"{above[0]} and the folders above it"] if above else []
    looked += [str(c) for c in env + beside_package]
    raise ConfigError(
        f"Cannot find the configs/ preset folder (looked in {', '.join(looked)}). Set TEXTSAE_CONFIGS=DIR."
    )


def load_recipe(recipe: str | os.PathLike[str], overrides: Sequence[str] = ()) -> RecipeConfig:
    """Load a recipe YAML, apply presets and overrides, and return the validated config.

    Args:
        recipe: Path to the recipe YAML file.
        overrides: ``key=value`` strings (value parsed as YAML) and ``~key`` deletions.

    Returns:
        The validated :class:`RecipeConfig`.

    Raises:
        ConfigError: Listing every problem found, one per line.
    """
    tree = compose_tree(recipe, overrides)
    return build_config(tree)


def compose_tree(recipe: str | os.PathLike[str], overrides: Sequence[str] = ()) -> dict[str, Any]:
    """Merge presets, recipe keys and overrides into one nested dict (paths made absolute)."""
    recipe_path = Path(recipe)
    if recipe_path.is_dir():
        raise ConfigError(f"{recipe_path} is a folder; expected a recipe YAML file (see `textsae ls`).")
    if not recipe_path.is_file():
        hint = _closest_recipe_hint(recipe_path)
        raise ConfigError(f"Recipe file not found: {recipe_path}{hint}")
    raw = _read_yaml(recipe_path)
    configs_dir = find_configs_dir(recipe_path.resolve().parent)
    tree: dict[str, Any] = {"name": recipe_path.stem}
    problems: list[str] = []
    for preset in _as_list(raw.pop(DEFAULTS_KEY, []), f"{recipe_path}: defaults"):
        preset_path = configs_dir / f"{preset}{PRESET_SUFFIX}"
        group = str(preset).split("/")[0]
        if not _PRESET_RE.fullmatch(preset) or ".." in preset or group not in _SECTIONS:
            problems.append(
                f"{recipe_path}: defaults entry {preset!r} is not a preset name. Expected GROUP/NAME with GROUP one of "
                f"{', '.join(_SECTIONS)} (files under {configs_dir}); a recipe cannot include another recipe or a path."
            )
            continue
        if not preset_path.is_file():
            problems.append(
                f"{recipe_path}: preset {preset!r} not found (looked for {preset_path}); {_list_presets(configs_dir, group)}"
            )
            continue
        preset_tree = {group: _resolve_paths(_read_yaml(preset_path), preset_path.parent, (group,))}
        move_keys(preset_tree, f"preset {preset}")
        problems += _take_data_source(tree, _sources_set(preset_tree.get("data")), f"preset {preset}")
        _switch_components(tree, _selectors_set(preset_tree), f"preset {preset}")
        _merge(tree, preset_tree)
    move_keys(raw, str(recipe_path))
    problems += _take_data_source(tree, _sources_set(raw.get("data")), str(recipe_path))
    if problems:
        raise ConfigError(problems)
    _switch_components(tree, _selectors_set(raw), str(recipe_path))
    _merge(tree, _resolve_paths(raw, recipe_path.resolve().parent, ()))
    problems += _take_data_source(tree, _override_sources(overrides), "the command line")
    if problems:
        raise ConfigError(problems)
    _switch_components(tree, _override_selectors(overrides), "the command line")
    apply_overrides(tree, overrides)
    return tree


def move_keys(tree: dict[str, Any], level: str, *, quiet: bool = False) -> None:
    """Rename moved keys (:data:`MOVED_KEYS`) in one level's tree, in place, with a note line for each.

    Two old keys that now name one setting (``train.device`` and ``featurizer.device`` → ``runtime.device``) must
    agree, with each other and with the new key at the same level: otherwise a ConfigError names them, since one of
    the values would be lost. A config saved by an earlier version (``quiet``) held both keys whatever the user set,
    so there the value that differs from the default is the one the user chose.
    """
    moved: dict[str, list[tuple[str, Any]]] = {}
    for old, (new, values) in MOVED_KEYS.items():
        old_section, old_key = old.split(".")
        section = tree.get(old_section)
        if not isinstance(section, dict) or old_key not in section:
            continue
        value = section.pop(old_key)
        if not section:
            tree.pop(old_section)
        moved.setdefault(new, []).append((old, values.get(value, value) if _hashable(value) else value))
        if not quiet:
            _note(f"{level}: {old} is now {new}; the old name still works.")
    problems = []
    for new, olds in moved.items():
        new_section, new_key = new.split(".")
        target = tree.setdefault(new_section, {})
        if not isinstance(target, dict):
            continue
        default = getattr(RuntimeConfig(), new_key) if new_section == "runtime" else None
        given = [(new, target[new_key])] if new_key in target else []
        chosen = {value for _, value in given + olds if _hashable(value)}
        if quiet and len(chosen) > 1:
            chosen.discard(default)
        if len(chosen) > 1:
            named = " and ".join(f"{key}={value}" for key, value in given + olds)
            problems.append(
                f"{level}: {named} now name one setting, {new}, and disagree; keep one value (write {new}=VALUE)."
            )
        elif chosen and new_key not in target:
            target[new_key] = chosen.pop()
    if problems:
        raise ConfigError(problems)


def _hashable(value: Any) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True


def _note(line: str) -> None:
    from textsae._io import logger

    logger.warning("note: %s", line)


def _selectors_set(level_tree: dict[str, Any]) -> dict[str, Any]:
    """The component choices one level makes: section → the value of its selector key (e.g. sae → relu_l1)."""
    chosen = {}
    for section, base in component_sections().items():
        values = level_tree.get(section)
        if isinstance(values, dict) and base.selector in values:
            chosen[section] = values[base.selector]
    return chosen


def _override_selectors(overrides: Sequence[str]) -> dict[str, Any]:
    chosen: dict[str, Any] = {}
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep:
            continue
        with contextlib.suppress(yaml.YAMLError, YamlLimitError):
            value = load_yaml(text) if text else None
            chosen.update(_selectors_set(_nest(key.strip().split("."), value)))
    return chosen


def _nest(parts: list[str], value: Any) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    _set(tree, parts, value)
    return tree


def _switch_components(tree: dict[str, Any], chosen: dict[str, Any], level: str) -> None:
    """When ``level`` picks another variant of a component (``sae.architecture``, ``featurizer.kind``), drop the keys
    lower levels set that the new variant does not have, with one note line."""
    for section, name in chosen.items():
        base = component_sections()[section]
        values = tree.get(section)
        if not isinstance(values, dict):
            continue
        before = values.get(base.selector, dataclasses.fields(base)[0].default)
        try:
            keys = {f.name for f in dataclasses.fields(base.variant(name))}
        except ConfigError:
            continue  # reported when the tree is built
        dropped = [key for key in values if key not in keys]
        for key in dropped:
            values.pop(key)
        if dropped and before != name:
            listed = ", ".join(f"{section}.{key}" for key in dropped)
            _note(f"{level} sets {section}.{base.selector}={name} (was {before}): dropped {listed}, set for {before}.")


DATA_SOURCES = ("path", "name", "bundled")
"""The ``data`` keys that each name a whole corpus: one level (a preset, the recipe, the command line) sets at most
one, and the level that sets one replaces what lower levels chose."""


def _sources_set(data: Any) -> list[str]:
    if not isinstance(data, dict):
        return []
    return [key for key in DATA_SOURCES if data.get(key) not in (None, "")]


def _override_sources(overrides: Sequence[str]) -> list[str]:
    found = []
    for item in overrides:
        key, sep, text = item.partition("=")
        if sep and key.strip() == "data":  # a whole section: `data={path: X, name: Y}`
            with contextlib.suppress(yaml.YAMLError):
                found += _sources_set(load_yaml(text))
            continue
        source = key.strip().removeprefix("data.")
        if sep and key.strip().startswith("data.") and source in DATA_SOURCES and text.strip() not in ("", "null", "~"):
            found.append(source)
    return sorted(set(found), key=DATA_SOURCES.index)


def _take_data_source(tree: dict[str, Any], sources: list[str], level: str) -> list[str]:
    """Clear the corpus sources lower levels set when ``level`` sets one; a problem line when it sets several."""
    if len(sources) > 1:
        named = " and ".join(f"data.{key}" for key in sources)
        return [f"{level}: {named} are both set, but a corpus comes from one source; keep one of them."]
    data = tree.get("data")
    if sources and isinstance(data, dict):
        replaced = [key for key in DATA_SOURCES if data.get(key) not in (None, "")]
        for key in DATA_SOURCES:
            if key != sources[0]:
                data.pop(key, None)
        # The replaced dataset's own settings go with it: which splits it has, and how the hub describes it.
        tied = (("eval_split", "train_split") if replaced and replaced != sources else ()) + (
            ("hub_config", "hub_text_column") if sources[0] != "name" else ()
        )
        for key in tied:
            data.pop(key, None)
    return []


def apply_overrides(tree: dict[str, Any], overrides: Sequence[str]) -> None:
    """Apply ``key=value`` / ``~key`` overrides in place (paths relative to the current directory)."""
    problems = []
    for item in overrides:
        item = _moved_override(item)
        if item.startswith("~"):
            parts = item[1:].strip().split(".")
            if _field_for(parts) is None:
                problems.append(_unknown_key(".".join(parts), f"in {item!r}"))
                continue
            _delete(tree, parts)
            continue
        key, sep, text = item.partition("=")
        if not sep or not key:
            problems.append(f"Command-line overrides must be in the form key=value (or ~key), got {item!r}.")
            continue
        try:
            value = load_yaml(text) if text != "" else None
        except YamlLimitError as error:
            problems.append(f"Override {item!r} refused: {error}.")
            continue
        except yaml.YAMLError:
            value = text
        parts = key.strip().split(".")
        if _is_path_key(parts) and text.strip() == "":
            problems.append(f"{item!r}: a path cannot be empty; give one, or write ~{key.strip()} to unset it.")
            continue
        if _is_path_key(parts) and value is not None:
            value = _absolute(value, Path.cwd(), key.strip())
        if len(parts) == 1 and isinstance(value, dict):  # a whole section, e.g. train={device: cpu}
            level = {parts[0]: value}
            move_keys(level, "the command line")
            for name, section in level.items():
                if name == parts[0]:
                    _set(tree, parts, section)
                else:
                    _merge(tree.setdefault(name, {}), section)
            continue
        _set(tree, parts, value)
    if problems:
        raise ConfigError(problems)


def _moved_override(item: str) -> str:
    """``item`` with a moved key (:data:`MOVED_KEYS`) renamed, and its value where the names changed."""
    deleting = item.startswith("~")
    key, sep, text = (item[1:] if deleting else item).partition("=")
    moved = MOVED_KEYS.get(key.strip())
    if moved is None:
        return item
    new, values = moved
    _note(f"the command line: {key.strip()} is now {new}; the old name still works.")
    if deleting:
        return f"~{new}"
    return f"{new}{sep}{values.get(text.strip(), text)}"


def build_config(tree: dict[str, Any]) -> RecipeConfig:
    """Validate a composed tree against the schema and build the dataclasses."""
    problems: list[str] = []
    config = _build(RecipeConfig, tree, (), problems, [])
    if problems:
        raise ConfigError(problems)
    return config


def build_saved_config(tree: Any) -> RecipeConfig:
    """A config saved by a run (``config.yaml``), by this version of textsae or an earlier one: moved keys are
    renamed and the keys of other architectures or featurizers, which earlier versions wrote for every run, dropped
    without notes."""
    if isinstance(tree, dict):
        tree = copy.deepcopy(tree)
        move_keys(tree, "saved config", quiet=True)
        for section, base in component_sections().items():
            if isinstance(tree.get(section), dict):
                tree[section] = _fit_component(base, tree[section])
    return build_config(tree)


def build_section(base: type, values: Any, section: str) -> Any:
    """One config section from a mapping, type-checked like a recipe; a component (``sae``, ``featurizer``) as the
    variant its selector names, without the keys of other variants (what earlier versions saved).

    Raises:
        ConfigError: Listing every problem found, one per line.
    """
    problems: list[str] = []
    if is_component_base(base) and isinstance(values, dict):
        values = _fit_component(base, values)
    built = _build(base, values, (section,), problems, [])
    if problems:
        raise ConfigError(problems)
    return built


def _fit_component(base: Any, values: dict[str, Any]) -> dict[str, Any]:
    """``values`` less the keys that the variant they name does not have (unchanged when it names none known)."""
    try:
        variant = base.variant(values.get(base.selector, dataclasses.fields(base)[0].default))
    except ConfigError:
        return values
    return {key: value for key, value in values.items() if key in config_keys_of(variant)}


def dump_yaml(config: RecipeConfig) -> str:
    """The resolved config as YAML (what ``textsae show`` prints and every run saves)."""
    return yaml.safe_dump(to_dict(config), sort_keys=False, default_flow_style=False)


def config_keys(cls: type = RecipeConfig, prefix: str = "") -> list[str]:
    """All dotted keys of the schema, those of every architecture and featurizer included (for ``did you mean``
    hints and docs)."""
    keys = []
    for name, (_, annotation) in _schema_fields(cls).items():
        key = f"{prefix}{name}"
        if _is_section(annotation):
            keys.extend(config_keys(annotation, key + "."))
        else:
            keys.append(key)
    return keys


def key_type(dotted: str) -> Any:
    """The type annotation of a dotted config key (e.g. ``sae.k`` → ``int``), or ``None`` for an unknown key."""
    cls: Any = RecipeConfig
    annotation: Any = None
    for part in dotted.split("."):
        fields = _schema_fields(cls) if _is_section(cls) else {}
        if part not in fields:
            return None
        annotation = cls = fields[part][1]
    return None if _is_section(annotation) else annotation


def _schema_fields(cls: type) -> dict[str, tuple[dataclasses.Field[Any], Any]]:
    """Field and type annotation of every key of a config dataclass; for a component base, of all its variants."""
    classes = list(cls.variants().values()) if is_component_base(cls) else [cls]
    out: dict[str, tuple[dataclasses.Field[Any], Any]] = {}
    for variant in classes:
        hints = typing.get_type_hints(variant)
        for f in dataclasses.fields(variant):
            out.setdefault(f.name, (f, hints[f.name]))
    return out


# --- building and type checking -------------------------------------------------------------


def _build(cls: type, values: Any, where: tuple[str, ...], problems: list[str], mistyped: list[str]) -> Any:
    name = ".".join(where) or "recipe"
    if values is None:
        values = {}
    if not isinstance(values, dict):
        problems.append(f"{name} must be a mapping of keys to values. Got {values!r} instead.")
        return None
    variant_name = None
    if is_component_base(cls):
        variant_name = values.get(cls.selector, dataclasses.fields(cls)[0].default)
        try:
            cls = cls.variant(variant_name)
        except ConfigError as error:
            problems.extend(error.problems)
            known = _schema_fields(cls)
            problems.extend(
                _unknown_key(".".join((*where, str(key))), f"valid keys: {', '.join(known)}")
                for key in values
                if key not in known
            )
            return None
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, value in values.items():
        dotted = ".".join((*where, str(key)))
        if key not in fields:
            if variant_name is not None:  # a key of another variant names its owner; a typo gets the closest key
                problems.append(cls.foreign_key_problem(variant_name, str(key)))  # type: ignore[attr-defined]
                continue
            problems.append(_unknown_key(dotted, f"valid keys here: {', '.join(fields)}"))
            continue
        annotation = hints[key]
        if _is_section(annotation):
            kwargs[key] = _build(annotation, value, (*where, key), problems, mistyped)
            continue
        ok, converted, message = _check_type(value, annotation)
        if not ok:
            problems.append(f"The {dotted!r} value must be {message}. Got {value!r} instead.")
            mistyped.append(dotted)
            continue
        kwargs[key] = converted
    if any(v is None and _is_section(hints[k]) for k, v in kwargs.items()):
        return None
    try:
        return cls(**kwargs)
    except ConfigError as error:
        # A check that involves a mistyped key judged the default in its place: a false second problem
        # (e.g. "no corpus given" after a bad data.path), so only the type problem is reported.
        problems.extend(line for line in error.problems if not any(key in line for key in mistyped))
        return None


def _unknown_key(dotted: str, fallback: str) -> str:
    """The problem line for an unknown dotted key: the closest valid key, else ``fallback``."""
    if dotted in MOVED_KEYS:
        return f"{dotted} is now {MOVED_KEYS[dotted][0]}; write that key here."
    close = difflib.get_close_matches(dotted, [*config_keys(), *_SECTIONS], n=1, cutoff=0.6)
    hint = f"did you mean {close[0]!r}?" if close else fallback
    return f"Unknown config key {dotted!r} ({hint})."


def _check_type(value: Any, annotation: Any) -> tuple[bool, Any, str]:
    """Return (ok, converted value, description of what was expected)."""
    origin = get_origin(annotation)
    args = get_args(annotation)
    if origin is Literal:
        if value in args:
            return True, value, ""
        close = difflib.get_close_matches(str(value), [str(a) for a in args], n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        return False, value, f"one of {list(args)}{hint}"
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return True, None, ""
        messages = []
        for arg in args:
            if arg is type(None):
                continue
            ok, converted, message = _check_type(value, arg)
            if ok:
                return True, converted, ""
            messages.append(message)
        return False, value, " or ".join(messages) + (" or null" if type(None) in args else "")
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            return False, value, f"a list ({_describe(annotation)})"
        item_types = (
            args if origin is tuple and args and args[-1] is not Ellipsis else (args[:1] or (Any,)) * len(value)
        )
        if origin is tuple and len(item_types) != len(value):
            return False, value, f"a list of {len(item_types)} items ({_describe(annotation)})"
        out = []
        for item, item_type in zip(value, item_types):
            ok, converted, message = _check_type(item, item_type)
            if not ok:
                return False, value, f"a list of {message}"
            out.append(converted)
        return True, (tuple(out) if origin is tuple else out), ""
    if annotation is Any:
        return True, value, ""
    if annotation is bool:
        return (isinstance(value, bool), value, "true or false")
    if annotation is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return True, value, ""
        return False, value, "an int"
    if annotation is float:
        number = None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            number = float(value)
        elif isinstance(value, str):
            with contextlib.suppress(ValueError):
                number = float(value)
        if number is None:
            return False, value, "a number"
        if not math.isfinite(number):
            return False, value, "a finite number"
        return True, number, ""
    if annotation is str:
        if isinstance(value, str):
            return True, value, ""
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return True, str(value), ""
        return False, value, "a string"
    return (isinstance(value, annotation), value, _describe(annotation))


def _describe(annotation: Any) -> str:
    return getattr(annotation, "__name__", None) or str(annotation).replace("typing.", "")


# --- tree helpers ------------------------------------------------------------------------------


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = load_yaml(path.read_text(encoding="utf-8"))
    except YamlLimitError as error:
        raise ConfigError(f"{path}: refused: {error}.") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"{path}:{where} is not valid YAML: {getattr(error, 'problem', error)}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path} is not UTF-8 text.") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a mapping of keys to values at the top level. Got {type(data).__name__}.")
    return data


def _as_list(value: Any, where: str) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    raise ConfigError(f"{where} must be a list of preset names like [data/imdb, sae/topk]. Got {value!r}.")


def _merge(base: dict[str, Any], update: dict[str, Any]) -> None:
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value


def _set(tree: dict[str, Any], parts: list[str], value: Any) -> None:
    node = tree
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    node[parts[-1]] = value


def _delete(tree: dict[str, Any], parts: list[str]) -> None:
    node: Any = tree
    for part in parts[:-1]:
        node = node.get(part) if isinstance(node, dict) else None
    if isinstance(node, dict):
        node.pop(parts[-1], None)


def _field_for(parts: Sequence[str]) -> dataclasses.Field[Any] | None:
    cls: Any = RecipeConfig
    found = None
    for part in parts:
        if not _is_section(cls):
            return None
        fields = _schema_fields(cls)
        if part not in fields:
            return None
        found, cls = fields[part]
    return found


def _is_path_key(parts: Sequence[str]) -> bool:
    f = _field_for(parts)
    return bool(f is not None and f.metadata.get("path"))


def _absolute(value: Any, base: Path, key: str) -> Any:
    """``value`` (a path or list of paths) made absolute against ``base``; a ConfigError naming ``key`` for a NUL byte."""
    if isinstance(value, list):
        return [_absolute(v, base, key) for v in value]
    if isinstance(value, str):
        if "\x00" in value:
            raise ConfigError([f"{key} must be a path; got {value!r}, which holds a NUL character (no file name can)."])
        expanded = Path(os.path.expanduser(value))
        return str(expanded if expanded.is_absolute() else (base / expanded).resolve())
    return value


def _resolve_paths(values: dict[str, Any], base: Path, prefix: tuple[str, ...]) -> dict[str, Any]:
    out = {}
    for key, value in values.items():
        parts = (*prefix, str(key))
        if isinstance(value, dict):
            out[key] = _resolve_paths(value, base, parts)
        elif value is not None and _is_path_key(parts):
            out[key] = _absolute(value, base, ".".join(parts))
        else:
            out[key] = value
    return out


def _list_presets(configs_dir: Path, group: str) -> str:
    folder = configs_dir / group
    names = sorted(f"{group}/{p.stem}" for p in folder.glob(f"*{PRESET_SUFFIX}")) if folder.is_dir() else []
    return f"available: {', '.join(names)}" if names else f"no presets in {folder}"


def _closest_recipe_hint(path: Path) -> str:
    folder = path.parent if path.parent.is_dir() else None
    if folder is None:
        return ""
    names = [p.name for p in folder.glob("*.yaml")]
    close = difflib.get_close_matches(path.name, names, n=1)
    return f" (did you mean {str(folder / close[0])!r}?)" if close else ""
