"""Peak memory of featurize → train → encode on a synthetic corpus of N documents (issue "Scale out").

Each stage runs in its own process under ``/usr/bin/time -v`` (peak RSS of that process, wall time):

1. ``textsae featurize``: streaming TF-IDF fit (10,000 unigram terms) and CSR shards of both splits;
2. ``textsae train``: a TopK SAE of 2,048 latents for a fixed number of steps, batches read from the shards;
3. encode: both splits' codes written from the memory-mapped shards (what ``Pipeline.encode`` does, without loading
   the codes back afterwards, which evaluation does).

The corpus is written first by ``benchmarks/synthetic_corpus.py`` (not measured) and read with ``data.streaming``.

    python benchmarks/scale_memory.py --docs 100000 --work /tmp/scale    # prints one row per stage
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

RECIPE = """# Scale benchmark: streamed synthetic corpus, TF-IDF 10,000 terms x TopK 2,048 latents, fixed steps.
defaults: [featurizer/tfidf_small, sae/topk, train/cpu_small, eval/linear_probe]
data:
  path: {corpus}
  streaming: true
featurizer:
  ngram_range: [1, 1]
  max_features: 10000
  min_df: 5
sae:
  n_latents: 2048
  k: 32
train:
  steps: {steps}
  batch_size: {batch}
  checkpoint_every: {steps}
runtime:
  progress: false
run:
  dir: {run_dir}
"""


def measure(command: list[str], log: Path) -> dict[str, float]:
    """Run ``command`` under ``/usr/bin/time -v``; its peak RSS (GB), wall seconds and exit code."""
    start = time.perf_counter()
    with open(log, "w") as out:
        result = subprocess.run(["/usr/bin/time", "-v", *command], stdout=out, stderr=subprocess.STDOUT, cwd=REPO)
    text = log.read_text()
    match = re.search(r"Maximum resident set size \(kbytes\): (\d+)", text)
    peak = int(match.group(1)) / 1e6 if match else float("nan")
    if result.returncode != 0:
        print(text[-3000:], file=sys.stderr)
    return {"peak_rss_gb": round(peak, 3), "wall_s": round(time.perf_counter() - start, 1), "rc": result.returncode}


def encode_stage(recipe: str) -> None:
    """Write both splits' codes from the stored features (``Pipeline.encode`` without loading them back)."""
    from textsae.artifacts import load_sae_artifact, sae_fingerprint
    from textsae.config.compose import load_recipe
    from textsae.encode import encode_features
    from textsae.pipeline import SPLITS, Pipeline

    pipeline = Pipeline(load_recipe(recipe, []))
    features = pipeline.featurize()
    sae = load_sae_artifact(pipeline.paths.sae)
    for split in SPLITS:
        meta = {"split": split, "recipe": pipeline.config.name, "sae_sha256": sae_fingerprint(pipeline.paths.sae)}
        encode_features(
            sae,
            getattr(features, split),
            pipeline.paths.codes(split),
            pipeline.config.encode,
            device="cpu",
            meta=meta,
            progress=False,
            overwrite=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=100_000, help="training documents (test: a tenth)")
    parser.add_argument("--work", type=Path, default=Path("/tmp/textsae-scale"), help="corpus and run folders")
    parser.add_argument("--steps", type=int, default=200, help="training steps (fixed)")
    parser.add_argument("--batch", type=int, default=512, help="train.batch_size")
    parser.add_argument("--encode-stage", metavar="RECIPE", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.encode_stage:
        encode_stage(args.encode_stage)
        return
    corpus = args.work / f"corpus-{args.docs}"
    if not (corpus / "test.parquet").exists():
        subprocess.run(
            [sys.executable, str(REPO / "benchmarks" / "synthetic_corpus.py"), str(corpus), "--docs", str(args.docs)],
            check=True,
        )
    run_dir = args.work / f"run-{args.docs}"
    recipe = args.work / f"scale-{args.docs}.yaml"
    recipe.write_text(RECIPE.format(corpus=corpus, steps=args.steps, batch=args.batch, run_dir=run_dir))
    python = [sys.executable]
    stages = {
        "featurize": [*python, "-m", "textsae", "featurize", str(recipe), "-q"],
        "train": [*python, "-m", "textsae", "train", str(recipe), "-q"],
        "encode": [*python, str(Path(__file__).resolve()), "--encode-stage", str(recipe)],
    }
    results = {}
    for name, command in stages.items():
        results[name] = measure(command, args.work / f"{name}-{args.docs}.log")
        print(
            f"{args.docs:>9,} docs  {name:<9}  peak RSS {results[name]['peak_rss_gb']:.3f} GB  "
            f"wall {results[name]['wall_s']:.0f} s  rc {results[name]['rc']}",
            flush=True,
        )
        if results[name]["rc"] != 0:
            break
    (args.work / f"results-{args.docs}.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
