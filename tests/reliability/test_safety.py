"""Source scans that fail when a change brings back pickle, unsafe YAML, remote code or a non-atomic write.

textsae's own artefacts are safetensors + JSON (+ npz/Parquet without pickle); configs are data,
never code; every file is written to a temporary name and renamed (``textsae._io.atomic_path``).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "textsae"
SOURCES = sorted(PACKAGE.rglob("*.py"))

FORBIDDEN = {
    "pickle": re.compile(
        r"\bimport (c?pickle|dill|joblib)\b|\b(c?pickle|dill|joblib)\.(loads?|dumps?)\b|\bto_pickle\(|\bread_pickle\("
    ),
    "unsafe YAML": re.compile(
        r"\byaml\.(load|unsafe_load|full_load|load_all)\(|Loader\s*=\s*yaml\.(Unsafe|Full)?Loader\b"
    ),
    "allow_pickle=True": re.compile(r"allow_pickle\s*=\s*True"),
    "trust_remote_code=True": re.compile(r"trust_remote_code\s*=\s*True"),
    "use_safetensors=False": re.compile(r"use_safetensors\s*=\s*False"),
    "eval/exec of strings": re.compile(r"(?<![.\w])(eval|exec)\(|\b__import__\("),
}


def _code_lines(path: Path) -> list[tuple[int, str]]:
    """Lines of ``path`` without comments and docstring-only lines (so prose may name what it forbids)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    doc_lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            doc_lines.update(range(node.lineno, (node.end_lineno or node.lineno) + 1))
    lines = path.read_text(encoding="utf-8").splitlines()
    return [(number, line.split("#", 1)[0]) for number, line in enumerate(lines, start=1) if number not in doc_lines]


@pytest.mark.parametrize("rule", list(FORBIDDEN))
def test_no_forbidden_patterns(rule: str) -> None:
    pattern = FORBIDDEN[rule]
    hits = [
        f"{path.relative_to(PACKAGE.parent)}:{number}: {line.strip()}"
        for path in SOURCES
        for number, line in _code_lines(path)
        if pattern.search(line)
    ]
    assert not hits, f"{rule}:\n" + "\n".join(hits)


def _calls(tree: ast.AST) -> list[ast.Call]:
    return [node for node in ast.walk(tree) if isinstance(node, ast.Call)]


def _name(call: ast.Call) -> tuple[str | None, str | None]:
    """(base, attribute) of ``base.attribute(...)``, or (None, name) of ``name(...)``."""
    func = call.func
    if isinstance(func, ast.Attribute):
        return (func.value.id if isinstance(func.value, ast.Name) else "", func.attr)
    if isinstance(func, ast.Name):
        return (None, func.id)
    return (None, None)


def test_torch_load_only_with_weights_only() -> None:
    bad = []
    for path in SOURCES:
        for call in _calls(ast.parse(path.read_text(encoding="utf-8"))):
            if _name(call) == ("torch", "load"):
                weights_only = next((k.value for k in call.keywords if k.arg == "weights_only"), None)
                if not (isinstance(weights_only, ast.Constant) and weights_only.value is True):
                    bad.append(f"{path.relative_to(PACKAGE.parent)}:{call.lineno}")
    assert not bad, f"torch.load without weights_only=True: {bad}"


def test_config_code_cannot_import_modules() -> None:
    """Recipes are data: the config layer never imports a module by name (no ``_component_``-style instantiation)."""
    for path in sorted((PACKAGE / "config").glob("*.py")):
        assert "import_module" not in path.read_text(encoding="utf-8"), path


def test_transformer_weights_load_as_safetensors() -> None:
    """Every ``AutoModel*.from_pretrained(...)`` call passes ``use_safetensors`` itself (the word elsewhere in its file
    is not enough), and the scan finds the hidden-states loader (it cannot pass by finding no call at all)."""
    calls = [
        (path.relative_to(PACKAGE).as_posix(), node)
        for path in SOURCES
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "from_pretrained"
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id.startswith("AutoModel")
    ]
    assert "featurize/hidden_states.py" in {where for where, _ in calls}, calls
    for where, node in calls:
        keywords = {keyword.arg for keyword in node.keywords}
        assert "use_safetensors" in keywords, f"{where}:{node.lineno} loads a transformer without use_safetensors"


# Raw writes are allowed only in a function that writes through atomic_path(), or in these helpers,
# which are only ever given the temporary path of an atomic_path() block (or append to a log).
_RAW_WRITE_HELPERS = {
    ("_io.py", "atomic_path"),  # opens its own temporary file to fsync it
    ("_io.py", "atomic_write_bytes"),  # tmp from atomic_path
    ("_io.py", "write_npz"),  # called with atomic_path temporaries
    ("store/codes.py", "_write_npz_shard"),
    ("store/codes.py", "_write_parquet_shard"),
    ("train/trainer.py", "_log"),  # metrics.jsonl: append-only; a resume cuts it back atomically to the checkpoint
}
_WRITE_ATTRIBUTES = {
    "write_text",
    "write_bytes",
    "savez",
    "savez_compressed",
    "save_npz",
    "save_file",
    "to_parquet",
    "write_table",
    "to_csv",
}


def _is_raw_write(call: ast.Call) -> bool:
    base, attr = _name(call)
    if attr in _WRITE_ATTRIBUTES:
        return True
    if attr == "to_json":  # pandas writes when given a path or buffer; the typed results' to_json() returns a dict
        return bool(call.args) or any(k.arg in ("path_or_buf", None) for k in call.keywords)
    if (base, attr) in {
        ("np", "save"),
        ("numpy", "save"),
        ("torch", "save"),
        ("json", "dump"),
        ("yaml", "dump"),
        ("yaml", "safe_dump"),
    }:
        return bool(call.args[1:]) or any(k.arg == "stream" for k in call.keywords)
    if attr == "open" and base in (None, "io", "os"):
        mode = call.args[1] if len(call.args) > 1 else next((k.value for k in call.keywords if k.arg == "mode"), None)
        return isinstance(mode, ast.Constant) and isinstance(mode.value, str) and bool(set(mode.value) & set("wax+"))
    return False


def test_every_write_is_atomic() -> None:
    offenders = []
    for path in SOURCES:
        relative = path.relative_to(PACKAGE).as_posix()
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for function in (n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))):
            writes = [c for c in _calls(function) if _is_raw_write(c)]
            if not writes or (relative, function.name) in _RAW_WRITE_HELPERS:
                continue
            if not any(_name(c)[1] == "atomic_path" for c in _calls(function)):
                offenders += [f"{relative}:{c.lineno} in {function.name}()" for c in writes]
    assert not offenders, "writes outside atomic_path():\n" + "\n".join(sorted(set(offenders)))


def test_the_scans_see_violations(tmp_path: Path) -> None:
    """The scans above would catch a violation (guards against a scan that matches nothing)."""
    sample = "import pickle\nimport yaml\nyaml.load(s)\nm.from_pretrained(x, trust_remote_code=True)\nopen(p, 'w').write('x')\n"
    lines = sample.splitlines()
    for rule in ("pickle", "unsafe YAML", "trust_remote_code=True"):
        assert any(FORBIDDEN[rule].search(line) for line in lines), rule
    call = ast.parse("open(p, 'w')").body[0].value
    assert isinstance(call, ast.Call) and _is_raw_write(call)
    assert not _is_raw_write(ast.parse("open(p, 'rb')").body[0].value)
    for write in ("frame.to_json(p)", "frame.to_json(path_or_buf=p, orient='records')", "frame.to_json(**kw)"):
        assert _is_raw_write(ast.parse(write).body[0].value), write
    assert not _is_raw_write(ast.parse("report.to_json()").body[0].value)
    assert not FORBIDDEN["eval/exec of strings"].search("sae.eval()")


def test_atomic_writes_get_the_permissions_of_a_plain_open(tmp_path) -> None:
    import os

    from textsae._io import atomic_write_text

    atomic_write_text(tmp_path / "a.txt", "x")
    with open(tmp_path / "b.txt", "w") as handle:
        handle.write("x")
    assert os.stat(tmp_path / "a.txt").st_mode == os.stat(tmp_path / "b.txt").st_mode
