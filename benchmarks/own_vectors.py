"""Own vectors against the hidden-states run that made them: featurizer.kind=vectors on MiniLM embeddings saved to
Parquet must give the hidden-states run's accuracies (the same vectors, the same SAE settings and seeds).

    python benchmarks/own_vectors.py --data ../shared/data/sst2_sentences --out runs/own_vectors [key=value ...]

Runs recipes/minilm_auto.yaml on DATA, writes its MiniLM embeddings with the texts and labels to OUT/vectors/
{train,test}.parquet (column ``vector``), runs the same recipe with featurizer.kind=vectors on that folder, and prints
both reports' accuracies side by side with the largest difference between the two runs' codes.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from textsae.config.compose import load_recipe
from textsae.markdown import markdown_table
from textsae.pipeline import Pipeline
from textsae.store.codes import load_codes

RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "minilm_auto.yaml"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="a labelled dataset folder or file")
    parser.add_argument("--out", required=True, help="where the two runs and the vectors go")
    parser.add_argument("overrides", nargs="*", help="overrides for both runs, e.g. runtime.threads=1")
    args = parser.parse_args()
    out = Path(args.out)
    start = time.perf_counter()
    hidden = Pipeline(load_recipe(RECIPE, [f"data.path={args.data}", f"run.dir={out / 'hidden'}", *args.overrides]))
    hidden_report = hidden.run()
    features, corpus = hidden.load_features(), hidden.corpus
    vectors_dir = out / "vectors"
    vectors_dir.mkdir(parents=True, exist_ok=True)
    for name, split, rows in (("train", corpus.train, features.train), ("test", corpus.eval, features.eval)):
        frame = pd.DataFrame({"text": split.texts, "label": split.labels, "vector": list(rows[slice(None)])})
        frame.to_parquet(vectors_dir / f"{name}.parquet")
    own = Pipeline(
        load_recipe(
            RECIPE,
            [f"data.path={vectors_dir}", "featurizer.kind=vectors", f"run.dir={out / 'own'}", *args.overrides],
        )
    )
    own_report = own.run()
    difference = abs(load_codes(out / "own" / "codes" / "eval") - load_codes(out / "hidden" / "codes" / "eval")).max()
    print(
        f"machine: {platform.processor() or platform.machine()}, python {sys.version.split()[0]}; {time.perf_counter() - start:.0f} s"
    )
    print(f"command: python benchmarks/own_vectors.py --data {args.data} --out {args.out} {' '.join(args.overrides)}")
    own_accuracy = {name: row.accuracy for name, row in own_report.eval.items()}
    rows = [
        [name, f"{row.accuracy:.4f}", f"{own_accuracy.get(name, float('nan')):.4f}"]
        for name, row in hidden_report.eval.items()
    ]
    print(markdown_table(["representation", "hidden states", "own vectors"], rows))
    print(f"largest difference between the two runs' stored eval codes: {float(difference):.3g}")
    print(f"codes bytes/doc: {hidden_report.eval['codes'].bytes_per_doc} vs {own_report.eval['codes'].bytes_per_doc}")
    assert np.isfinite(float(difference))


if __name__ == "__main__":
    main()
