"""YAML for recipes, overrides and saved run configs, read as untrusted text.

``yaml.safe_load`` never runs code, but three things it allows hurt a config reader:

- aliases that expand without limit ("billion laughs": a 1 KB file of nested ``*a`` references that grows to
  gigabytes once anything walks it, as hashing or printing a config does);
- a self-referencing anchor (``&a [*a]``), which builds a cyclic value that ends in ``RecursionError``;
- a repeated key (``sae:`` twice), which silently keeps the last block.

:func:`load_yaml` rejects all three with :class:`YamlLimitError`, naming the line, and otherwise returns what
``yaml.safe_load`` returns.
"""

from __future__ import annotations

from typing import Any

import yaml

__all__ = ["MAX_ALIASES", "MAX_DEPTH", "MAX_VALUES", "YamlLimitError", "load_yaml"]

MAX_ALIASES = 100
"""Most alias uses (``*name``) in one document; a recipe uses a few at most."""
MAX_VALUES = 100_000
"""Most scalars, lists and mappings in the loaded value, every alias counted as expanded."""
MAX_DEPTH = 50
"""Deepest nesting of lists and mappings."""


class YamlLimitError(yaml.YAMLError):
    """A YAML document that breaks one of the limits above, or repeats a key."""


class _LimitedLoader(yaml.SafeLoader):
    """SafeLoader that counts aliases and refuses duplicate keys."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._aliases = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            self._aliases += 1
            if self._aliases > MAX_ALIASES:
                mark = self.peek_event().start_mark
                raise YamlLimitError(f"more than {MAX_ALIASES} aliases (*name), at line {mark.line + 1}")
        return super().compose_node(parent, index)

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                first = seen.setdefault(key, key_node.start_mark.line + 1)
            except TypeError:  # an unhashable key: SafeLoader reports it below
                continue
            if first != key_node.start_mark.line + 1:
                raise YamlLimitError(
                    f"key {key!r} appears twice (lines {first} and {key_node.start_mark.line + 1}); "
                    "the second would silently replace the first"
                )
        return super().construct_mapping(node, deep=deep)


def _check_size(value: Any) -> None:
    """Walk ``value`` as a consumer would, aliases expanded, within MAX_VALUES values and MAX_DEPTH levels."""
    count = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        count += 1
        if count > MAX_VALUES:
            raise YamlLimitError(f"more than {MAX_VALUES:,} values once aliases are expanded")
        if depth > MAX_DEPTH:
            raise YamlLimitError(f"nested deeper than {MAX_DEPTH} levels (or an anchor that contains itself)")
        if isinstance(item, dict):
            stack.extend((child, depth + 1) for pair in item.items() for child in pair)
        elif isinstance(item, list):
            stack.extend((child, depth + 1) for child in item)


def load_yaml(text: str) -> Any:
    """Parse one YAML document like ``yaml.safe_load``, within the limits of this module.

    Raises:
        YamlLimitError: Too many aliases, values or levels, or a repeated key.
        yaml.YAMLError: Text that is not YAML.
    """
    loader = _LimitedLoader(text)
    try:
        value = loader.get_single_data()
    except RecursionError:  # the parser recurses once per level, before the depth check can see the value
        raise YamlLimitError("refused: nesting too deep to parse (the limit is 50 levels)") from None
    except ValueError as error:  # e.g. an integer of more than 4,300 digits
        raise YamlLimitError(f"refused: a value cannot be read ({' '.join(str(error).split())[:120]})") from None
    finally:
        loader.dispose()
    _check_size(value)
    return value
