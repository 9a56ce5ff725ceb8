"""Bag-of-n-grams features (TF-IDF, counts or binary), equal to scikit-learn's vectorizers but faster.

:class:`TfidfFeaturizer` gives the same vocabulary and values as
``TfidfVectorizer(token_pattern=r"(?u)\\b\\w\\w+\\b", use_idf=weighting == "tfidf",
binary=weighting == "binary", dtype=np.float32, ...)``. The tests and ``textsae bench`` compare
the two. The difference is how the work is done. scikit-learn builds every n-gram as a Python
string and counts it in a dict. Here, each step works on whole NumPy arrays:

1. **Tokens.** Documents are joined with ``"\\n"`` (a non-word character) in chunks of about
   256 K characters and decoded to a UTF-32 code-point array. A lookup table marks the word
   characters. It is built once from Python's own ``re`` (every code point that ``\\w`` matches), so
   it agrees with ``re`` of the running interpreter on apostrophes, digits, ``_``, accents,
   CJK and so on. ``\\b\\w\\w+\\b`` matches exactly the maximal runs of two or more word characters,
   and those runs are found with ``np.diff``.
2. **Token ids.** Each run gets two independent 64-bit polynomial hashes (random per-code-point
   values, arithmetic mod 2**64, computed with ``cumsum``). ``pandas.factorize`` numbers the
   first hash. The second hash and the length must agree within every group. If they do not (a
   64-bit collision), the exact reference path (``re.findall`` + factorize on the strings) runs
   instead, so a collision can never merge two tokens silently. What is left is the chance that
   both hashes collide at once, about 2**-128 per pair of distinct tokens.
3. **n-grams.** The code of an n-gram is ``code(prefix (n-1)-gram) * n_words + word id``,
   renumbered at each order (``factorize`` at fit, a hash lookup at transform), so it never
   overflows whatever ``n`` is. Bigrams are consecutive tokens of one document, like sklearn's
   ``"w1 w2"``.
4. **Counts.** A COO→CSR conversion sums duplicates. ``np.bincount`` gives the document
   frequencies, the pruning follows sklearn's ``_limit_features``, and the terms are renumbered
   in sorted (code-point) order.

Weights, as in sklearn's ``TfidfTransformer`` (``n`` = training documents, ``df(t)`` = documents
that contain term ``t``, ``tf(t, d)`` = count of ``t`` in ``d``)::

    tf'(t, d) = 1 + ln tf(t, d)         if sublinear_tf (counts/tfidf), else tf(t, d); 1 if binary
    idf(t)    = ln((1 + n) / (1 + df(t))) + 1   if smooth_idf,  else ln(n / df(t)) + 1
    x(t, d)   = tf'(t, d) * idf(t)      (tfidf)  or  tf'(t, d)  (counts, binary)

and then each row is divided by its L2 or L1 norm (``norm``; all-zero rows stay zero). The
"+ 1" in idf keeps terms that occur in every document from being dropped altogether.

Why not Hugging Face ``tokenizers``: that was the first plan. A ``Tokenizer`` with a ``WordLevel``
model and a ``Split`` pre-tokenizer was measured on IMDB train (25k reviews, 2 shared cores). It
took 2.3 s to learn the word list and 4.1 s for ``encode_batch`` with a character class equal to
Python's ``\\w``. With Oniguruma's own ``\\w``, ``encode_batch`` took 2.3 s, but that class differs
from Python's: it counts combining marks (a decomposed ``é``, Devanagari vowel signs) and every
connector punctuation mark (``a‿b``) as word characters. Steps 1-2 above take about 1 s on one
thread. Python's ``re.findall`` alone takes 1.4-2.9 s. The per-token ``NormalizedString``
bookkeeping in ``tokenizers`` costs more than the regex it runs.
"""

from __future__ import annotations

import functools
import inspect
import itertools
import json
import math
import os
import re
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, fields
from numbers import Integral, Real
from pathlib import Path
from types import SimpleNamespace
from typing import Any, ClassVar, Literal, NamedTuple

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from textsae._io import (
    atomic_write_bytes,
    atomic_write_json,
    library_versions,
    logger,
    read_json_checked,
)
from textsae.config.schema import FeaturizerConfig, RuntimeConfig
from textsae.errors import UserError
from textsae.featurize.base import CONFIG_NAME, read_featurizer_config

__all__ = ["IDF_NAME", "KIND", "TOKEN_PATTERN", "VOCAB_NAME", "TfidfConfig", "TfidfFeaturizer"]

KIND = "tfidf"
"""The ``kind`` written to ``config.json``."""
VOCAB_NAME = "vocab.json"
"""JSON list of terms in column order."""
IDF_NAME = "idf.safetensors"
"""Tensor ``idf`` (float32, one per column); only written for ``weighting="tfidf"``."""
TOKEN_PATTERN = r"(?u)\b\w\w+\b"
"""scikit-learn's default token pattern; the reference tokenizer uses it verbatim."""


@dataclass
class TfidfConfig(FeaturizerConfig):
    """``featurizer.kind=tfidf``: bag-of-words vectors, sparse, with a vocabulary learned from the training split."""

    output: ClassVar[Literal["sparse", "dense"]] = "sparse"
    per_corpus: ClassVar[bool] = True

    weighting: Literal["tfidf", "counts", "binary"] = "tfidf"
    """Term weights: TF-IDF (smooth idf), raw counts, or 0/1 presence."""
    lowercase: bool = True
    """Lower-case text before tokenizing."""
    ngram_range: tuple[int, int] = (1, 2)
    """Smallest and largest n-gram length, e.g. ``[1, 2]`` for unigrams and bigrams."""
    max_features: int | None = 30000
    """Keep the most frequent terms only (after document-frequency pruning); ``None`` keeps all."""
    min_df: int | float = 2
    """Drop terms in fewer documents than this (an int count, or a fraction in (0, 1))."""
    max_df: int | float = 1.0
    """Drop terms in more documents than this (a fraction in (0, 1], or an int count > 1)."""
    sublinear_tf: bool = True
    """Use 1 + log(tf) instead of tf (TF-IDF and counts weighting)."""
    smooth_idf: bool = True
    """idf = ln((1 + n) / (1 + df)) + 1, as if one extra document held every term."""
    norm: Literal["l2", "l1", "none"] = "l2"
    """Row normalisation of the output vectors."""
    max_candidate_terms: int = 4_000_000
    """Streaming fit (:meth:`TfidfFeaturizer.fit_stream`): at most this many distinct n-grams are counted at once
    (about 24 bytes each, twice that while merging). Past it the rarest (fewest documents) are dropped, with one log
    line, and the document counts of rare terms may then be approximate; below it the vocabulary and idf equal
    those of the in-memory fit."""

    def problems(self) -> list[str]:
        self.ngram_range = tuple(self.ngram_range)  # type: ignore[assignment]  # a YAML list; its length is checked below
        problems = super().problems()
        lo, hi = self.ngram_range if len(self.ngram_range) == 2 else (0, 0)
        if len(self.ngram_range) != 2 or lo < 1 or hi < lo:
            problems.append(
                "featurizer.ngram_range must be [min_n, max_n] with 1 <= min_n <= max_n. "
                f"Got {list(self.ngram_range)!r} instead."
            )
        if self.max_features is not None and self.max_features < 1:
            problems.append(f"featurizer.max_features must be an int >= 1 or null. Got {self.max_features!r} instead.")
        if self.max_candidate_terms < 1:
            problems.append(
                f"featurizer.max_candidate_terms must be an int >= 1. Got {self.max_candidate_terms!r} instead."
            )
        if self.min_df < 0 or self.max_df <= 0:
            problems.append(
                f"featurizer.min_df must be >= 0 and max_df > 0. Got min_df={self.min_df!r}, max_df={self.max_df!r}."
            )
        return problems


# The only home of the defaults (STYLE.md rule 1), read from the fields: building a TfidfConfig here would look up
# the featurizer registry while this module is still being imported.
_DEFAULTS = SimpleNamespace(**{f.name: f.default for f in fields(TfidfConfig)})
_WEIGHTINGS = ("tfidf", "counts", "binary")
_NORMS = ("l2", "l1", "none")
_CHUNK_CHARS = 1 << 18  # code points per chunk: long NumPy loops, arrays that stay in cache (measured best)
_SEPARATOR = "\n"  # joins documents inside a chunk; not a word character, so no token spans two documents


# --------------------------------------------------------------------------- tokenization


class _Tokens(NamedTuple):
    """Tokens of a corpus in reading order."""

    doc: np.ndarray  # (N,) int32: document of each token, non-decreasing
    word: np.ndarray  # (N,) int32: id of each token's string
    words: list[str]  # (U,) the string of each id


@functools.cache
def _word_char_table() -> np.ndarray:
    """``table[c]`` is True when code point ``c`` matches ``\\w`` in Python's ``re`` (str patterns)."""
    code_points = np.arange(0x110000, dtype="<u4")
    code_points[0xD800:0xE000] = 0x20  # surrogates cannot be decoded from UTF-32; they are not \w anyway
    every_char = code_points.tobytes().decode("utf-32-le")
    table = np.zeros(0x110000, dtype=bool)
    for run in re.finditer(r"\w+", every_char):
        table[run.start() : run.end()] = True
    return table


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """The SplitMix64 finaliser on a uint64 array (wrapping arithmetic)."""
    z = x + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


# Two independent hash families: (seed for the per-code-point values, odd polynomial base).
_HASH_FAMILIES = ((0x243F6A8885A308D3, 0x100000001B3 | 1), (0x13198A2E03707344, 0x5851F42D4C957F2D | 1))


@functools.cache
def _char_values(family: int) -> np.ndarray:
    """(0x110000,) uint64 pseudo-random value of every code point for hash ``family``."""
    seed = np.uint64(_HASH_FAMILIES[family][0])
    return _splitmix64(np.arange(0x110000, dtype=np.uint64) ^ seed)


def _powers_for(family: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Power tables with at least ``n + 1`` entries; cached only at chunk size (a huge document must not pin memory)."""
    size = 1 << max(_CHUNK_CHARS.bit_length(), n.bit_length())
    return _powers(family, size) if size <= 2 * _CHUNK_CHARS else _powers.__wrapped__(family, size)


@functools.cache
def _powers(family: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """``(P**j, P**-j) mod 2**64`` for ``j < size``, P the odd base of hash ``family``."""
    base = _HASH_FAMILIES[family][1]
    inverse = pow(base, -1, 1 << 64)
    powers = np.full(size, base, dtype=np.uint64)
    powers[0] = 1
    inverse_powers = np.full(size, inverse, dtype=np.uint64)
    inverse_powers[0] = 1
    # cumprod on uint64 wraps mod 2**64, which is the arithmetic we want.
    return np.cumprod(powers, out=powers), np.cumprod(inverse_powers, out=inverse_powers)


def _run_hash(cp: np.ndarray, starts: np.ndarray, ends: np.ndarray, family: int) -> np.ndarray:
    """Hash of each run ``cp[s:e]``: ``sum_j value(cp[s + j]) * P**j mod 2**64``."""
    n = cp.size
    powers, inverse_powers = _powers_for(family, n)
    prefix = np.empty(n + 1, dtype=np.uint64)  # prefix[i] = sum_{j < i} value(cp[j]) * P**j
    prefix[0] = 0
    np.cumsum(_char_values(family)[cp] * powers[:n], out=prefix[1:])
    return (prefix[ends] - prefix[starts]) * inverse_powers[starts]


def _chunks(lengths: np.ndarray) -> list[tuple[int, int]]:
    """Split documents into ``[a, b)`` ranges of roughly ``_CHUNK_CHARS`` characters."""
    ends = np.cumsum(lengths + 1)
    bounds = [0]
    while bounds[-1] < lengths.size:
        start_chars = ends[bounds[-1] - 1] if bounds[-1] else 0
        nxt = int(np.searchsorted(ends, start_chars + _CHUNK_CHARS, side="right"))
        bounds.append(max(nxt, bounds[-1] + 1))
    return list(itertools.pairwise(bounds))


def _tokenize_fast(docs: list[str]) -> _Tokens | None:
    """Vectorised tokenization (module docstring, steps 1-2); ``None`` on a detected hash collision.

    Each chunk is factorized on its own (small hash tables, small per-token arrays), then the
    chunks' distinct tokens are factorized together. Both levels check the second hash and the
    length.
    """
    import pandas as pd

    if not docs:
        return _Tokens(np.zeros(0, np.int32), np.zeros(0, np.int32), [])
    table = _word_char_table()
    lengths = np.fromiter(map(len, docs), dtype=np.int64, count=len(docs))
    token_doc, token_local, local_base = [], [], [0]
    distinct: dict[str, list[np.ndarray]] = {"h1": [], "h2": [], "length": [], "doc": [], "offset": []}
    for a, b in _chunks(lengths):
        cp = np.frombuffer(_SEPARATOR.join(docs[a:b]).encode("utf-32-le", "surrogatepass"), dtype="<u4")
        edges = np.flatnonzero(np.diff(table[cp], prepend=False, append=False))  # run starts, run ends, ...
        starts, ends = edges[0::2], edges[1::2]
        keep = ends - starts >= 2
        starts, ends = starts[keep], ends[keep]
        h1, h2 = _run_hash(cp, starts, ends, 0), _run_hash(cp, starts, ends, 1)
        local, uniques = pd.factorize(h1)
        rep = _representatives(local, uniques.size)
        length = ends - starts
        if not (np.array_equal(h2[rep][local], h2) and np.array_equal(length[rep][local], length)):
            return None
        doc_starts = np.concatenate(([0], np.cumsum(lengths[a:b] + 1)[:-1]))
        doc = (np.searchsorted(doc_starts, starts, side="right") - 1).astype(np.int32)
        token_doc.append(doc + np.int32(a))
        token_local.append(local.astype(np.int32) + np.int32(local_base[-1]))
        local_base.append(local_base[-1] + uniques.size)
        distinct["h1"].append(uniques)
        distinct["h2"].append(h2[rep])
        distinct["length"].append(length[rep])
        distinct["doc"].append(doc[rep] + a)
        distinct["offset"].append(starts[rep] - doc_starts[doc[rep]])
    h1, h2, length, doc, offset = (np.concatenate(distinct[key]) for key in ("h1", "h2", "length", "doc", "offset"))
    global_id, uniques = pd.factorize(h1)
    rep = _representatives(global_id, uniques.size)
    if not (np.array_equal(h2[rep][global_id], h2) and np.array_equal(length[rep][global_id], length)):
        return None
    word = global_id.astype(np.int32)[np.concatenate(token_local)]
    words = [
        docs[d][s : s + n]
        for d, s, n in zip(doc[rep].tolist(), offset[rep].tolist(), length[rep].tolist(), strict=True)
    ]
    return _Tokens(np.concatenate(token_doc), word, words)


def _representatives(codes: np.ndarray, n_codes: int) -> np.ndarray:
    """One position holding each code (any one will do: all of them must be the same token)."""
    rep = np.empty(n_codes, dtype=np.intp)
    rep[codes] = np.arange(codes.size)
    return rep


def _tokenize_reference(docs: list[str]) -> _Tokens:
    """Plain reference tokenizer: ``re.findall(TOKEN_PATTERN)`` per document, then factorize the strings."""
    import pandas as pd

    pattern = re.compile(TOKEN_PATTERN)
    per_doc = [pattern.findall(doc) for doc in docs]
    counts = np.fromiter(map(len, per_doc), dtype=np.int64, count=len(per_doc))
    flat = np.empty(int(counts.sum()), dtype=object)
    flat[:] = [token for tokens in per_doc for token in tokens]
    word, uniques = pd.factorize(flat)
    doc = np.repeat(np.arange(len(docs), dtype=np.int32), counts)
    return _Tokens(doc, word.astype(np.int32), [str(u) for u in uniques])


def _tokenize(docs: list[str], lowercase: bool) -> _Tokens:
    """Tokens of ``docs`` with sklearn's default analyzer semantics (``str.lower`` + ``TOKEN_PATTERN``)."""
    if lowercase:
        docs = [doc.lower() for doc in docs]
    tokens = _tokenize_fast(docs)
    if tokens is None:
        logger.warning("TfidfFeaturizer: 64-bit token hash collision; using the exact (slower) re-based tokenizer.")
        tokens = _tokenize_reference(docs)
    return tokens


# --------------------------------------------------------------------------- n-grams and counts


def _count_matrix(
    rows: list[np.ndarray], cols: list[np.ndarray], shape: tuple[int, int]
) -> tuple[sp.csr_matrix, np.ndarray]:
    """CSR of occurrence counts (float32, indices sorted) and each column's total count (int64)."""
    row = np.concatenate(rows) if rows else np.zeros(0, np.int32)
    col = np.concatenate(cols) if cols else np.zeros(0, np.int32)
    totals = np.bincount(col, minlength=shape[1])
    # tocsr() sums duplicates and sorts the indices of every row.
    return sp.coo_matrix((np.ones(row.size, dtype=np.float32), (row, col)), shape=shape).tocsr(), totals


class _Ngrams(NamedTuple):
    """All n-grams of a training corpus, as codes; strings are built only for the terms kept."""

    counts: sp.csr_matrix  # (n_docs, T) float32 counts; column = offset[k] + code of a k-gram
    totals: np.ndarray  # (T,) int64 count of each term over the corpus
    words: list[str]  # (U,) token strings
    prefix: list[np.ndarray]  # prefix[k-1][code]: code of the (k-1)-word prefix of k-gram ``code`` (k >= 2)
    last: list[np.ndarray]  # last[k-1][code]: word id of the last word of k-gram ``code``
    offset: dict[int, int]  # first column of the k-grams, for min_n <= k <= max_n

    def term_words(self, columns: np.ndarray) -> np.ndarray:
        """``(len(columns), max_n)`` word ids of each term, padded with -1 after its last word."""
        out = np.full((columns.size, max(self.offset)), -1, dtype=np.int64)
        for k, start in self.offset.items():
            select = np.flatnonzero((columns >= start) & (columns < start + self.last[k - 1].size))
            code = columns[select] - start
            for j in range(k, 0, -1):
                out[select, j - 1] = self.last[j - 1][code]
                if j > 1:
                    code = self.prefix[j - 1][code]
        return out

    def sorted_order(self, columns: np.ndarray) -> np.ndarray:
        """Permutation that sorts ``columns`` by their term strings (Python ``str`` order).

        The space that joins words sorts below every word character, so comparing ``"w1 w2"``
        strings equals comparing word tuples (a proper prefix first): an integer lexsort of the
        words' ranks, with -1 padding after shorter terms.
        """
        rank = np.empty(len(self.words), dtype=np.int64)
        rank[sorted(range(len(self.words)), key=self.words.__getitem__)] = np.arange(len(self.words))
        ids = self.term_words(columns)
        ranks = np.where(ids >= 0, rank[np.maximum(ids, 0)], -1)
        return np.lexsort(ranks.T[::-1])

    def term_strings(self, columns: np.ndarray) -> list[str]:
        """The term string of each column (words joined by one space)."""
        words = self.words
        return [" ".join(words[w] for w in row if w >= 0) for row in self.term_words(columns).tolist()]


def _fit_ngrams(tokens: _Tokens, n_docs: int, ngram_range: tuple[int, int]) -> _Ngrams:
    """Count every n-gram of the corpus (module docstring, steps 3-4)."""
    import pandas as pd

    min_n, max_n = ngram_range
    n_tokens, n_words = tokens.word.size, len(tokens.words)
    rows, cols, prefixes, lasts, offset = [], [], [], [], {}
    n_terms = 0
    code = tokens.word  # code of the k-gram that starts at each position (-1: none)
    for k in range(1, max_n + 1):
        if k == 1:
            pos, found = np.arange(n_tokens), code
            prefixes.append(np.zeros(0, np.int64))
            lasts.append(np.arange(n_words))
        else:
            m = n_tokens - k + 1
            if m <= 0:
                break
            pos = np.flatnonzero(tokens.doc[k - 1 :] == tokens.doc[:m])  # starts of k-grams inside one document
            found, uniques = pd.factorize(code[pos].astype(np.int64) * n_words + tokens.word[pos + k - 1])
            prefix, last = np.divmod(uniques, n_words)
            prefixes.append(prefix)
            lasts.append(last)
            code = np.full(m, -1, dtype=np.int32)
            code[pos] = found
        if k >= min_n:
            rows.append(tokens.doc[pos])
            cols.append(found.astype(np.int32) + np.int32(n_terms))
            offset[k] = n_terms
            n_terms += lasts[-1].size
    return _Ngrams(*_count_matrix(rows, cols, (n_docs, n_terms)), tokens.words, prefixes, lasts, offset)


class _Lookup(NamedTuple):
    """Maps tokens of new text onto fitted columns (built from the vocabulary alone)."""

    components: Any  # pandas.Index of the distinct words inside the terms; position = component id
    unigram_column: np.ndarray  # (C,) column of the one-word term of each component, or -1
    keys: list[Any]  # keys[k-2]: pandas.Index of the codes of all k-word prefixes of terms (k >= 2)
    columns: list[np.ndarray]  # columns[k-2]: column of the k-word term with that code, or -1


def _build_lookup(terms: list[str]) -> _Lookup:
    """Index the vocabulary by word prefixes, with the same codes that :func:`_fit_ngrams` uses."""
    import pandas as pd

    tokens = _tokenize(terms, lowercase=False)  # a term "w1 w2" tokenizes into exactly w1, w2
    n_comp, n_terms = len(tokens.words), len(terms)
    length = np.bincount(tokens.doc, minlength=n_terms)
    first = np.cumsum(length) - length
    column = np.arange(n_terms)
    unigram_column = np.full(n_comp, -1, dtype=np.int64)
    unigram_column[tokens.word[first[length == 1]]] = column[length == 1]
    code = tokens.word[first].astype(np.int64)  # code of each term's k-word prefix, for growing k
    keys, columns = [], []
    for k in range(2, int(length.max(initial=1)) + 1):
        has_k = length >= k
        key = code[has_k] * n_comp + tokens.word[first[has_k] + k - 1]
        inverse, uniques = pd.factorize(key)
        code[has_k] = inverse
        cols = np.full(uniques.size, -1, dtype=np.int64)
        ends_here = length[has_k] == k
        cols[inverse[ends_here]] = column[has_k][ends_here]
        keys.append(pd.Index(uniques))
        columns.append(cols)
    return _Lookup(pd.Index(tokens.words, dtype=object), unigram_column, keys, columns)


def _transform_ngrams(
    tokens: _Tokens, n_docs: int, lookup: _Lookup, ngram_range: tuple[int, int], n_features: int
) -> sp.csr_matrix:
    """Counts of the fitted terms in new text: ``(n_docs, n_features)``."""
    min_n, max_n = ngram_range
    n_tokens, n_comp = tokens.word.size, len(lookup.components)
    word = lookup.components.get_indexer(tokens.words)[tokens.word] if tokens.words else tokens.word  # -1: unknown word
    rows, cols = [], []
    prev_code = word.astype(np.int64, copy=False)
    for k in range(1, max_n + 1):
        if k == 1:
            pos = np.flatnonzero(word >= 0)
            col = lookup.unigram_column[word[pos]]
        else:
            m = n_tokens - k + 1
            if m <= 0 or k - 2 >= len(lookup.keys):
                break
            nxt = word[k - 1 :]
            pos = np.flatnonzero((tokens.doc[k - 1 :] == tokens.doc[:m]) & (prev_code[:m] >= 0) & (nxt >= 0))
            where = lookup.keys[k - 2].get_indexer(prev_code[pos] * n_comp + nxt[pos])  # hash lookup; -1: absent
            found = where >= 0
            pos, where = pos[found], where[found]
            prev_code = np.full(m, -1, dtype=np.int64)
            prev_code[pos] = where
            col = lookup.columns[k - 2][where]
        if k >= min_n:
            hit = col >= 0
            rows.append(tokens.doc[pos[hit]])
            cols.append(col[hit])
    return _count_matrix(rows, cols, (n_docs, n_features))[0]


# --------------------------------------------------------------------------- streaming counts

STREAM_BATCH_DOCS = 4096
"""Documents tokenized at once by :meth:`TfidfFeaturizer.fit_stream` and :meth:`TfidfFeaturizer.iter_transform`."""
_MERGE_MIN_ROWS = 1 << 20  # pending batch counts merged at least this many at a time (one sort per merge)


class _TermTable(NamedTuple):
    """Counted n-grams, one array set per order ``min_n..max_n``; words by id; picklable (gathered over ranks)."""

    words: list[str]  # word id -> string
    keys: list[np.ndarray]  # keys[i]: (m, min_n + i) int32 word ids of each n-gram, distinct rows
    df: list[np.ndarray]  # (m,) int64 documents holding it
    total: list[np.ndarray]  # (m,) int64 occurrences
    n_docs: int
    n_tokens: int
    pruned: bool  # some n-grams were dropped at max_candidate_terms


def _reduce_rows(keys: np.ndarray, df: np.ndarray, total: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sum ``df`` and ``total`` over equal rows of ``keys``; rows come out sorted."""
    if keys.shape[0] == 0:
        return keys, df, total
    bits = max(int(keys.max()).bit_length(), 1)
    if bits * keys.shape[1] <= 63:  # one int64 per row sorts several times faster than a lexsort of the columns
        packed = np.zeros(keys.shape[0], dtype=np.int64)
        for column in range(keys.shape[1]):
            packed = (packed << bits) | keys[:, column]
        order = np.argsort(packed)
    else:
        order = np.lexsort(keys.T[::-1])
    keys, df, total = keys[order], df[order], total[order]
    first = np.ones(keys.shape[0], dtype=bool)
    first[1:] = np.any(keys[1:] != keys[:-1], axis=1)
    starts = np.flatnonzero(first)
    return keys[starts], np.add.reduceat(df, starts), np.add.reduceat(total, starts)


class _TermCounter:
    """Document frequency and total count of every n-gram seen, over batches of documents.

    Each batch is counted on its own (:func:`_fit_ngrams`), its words are mapped to ids shared by all batches, and
    its n-grams (rows of word ids) wait in a list; when the waiting rows outnumber the counted ones they are merged
    by one sort (:func:`_reduce_rows`), so each row is sorted O(log) times in all. After a merge, more than
    ``max_candidates`` n-grams are cut back to that many, dropping those in the fewest documents.
    """

    def __init__(self, ngram_range: tuple[int, int], max_candidates: int) -> None:
        self.min_n, self.max_n = ngram_range
        self.max_candidates = max_candidates
        self.word_ids: dict[str, int] = {}
        self.words: list[str] = []
        orders = range(self.min_n, self.max_n + 1)
        self.keys = [np.zeros((0, k), np.int32) for k in orders]
        self.df = [np.zeros(0, np.int64) for _ in orders]
        self.total = [np.zeros(0, np.int64) for _ in orders]
        self.pending: list[list[tuple[np.ndarray, np.ndarray, np.ndarray]]] = [[] for _ in orders]
        self.n_pending = 0
        self.n_docs = 0
        self.n_tokens = 0
        self.pruned = False

    def add(self, tokens: _Tokens, n_docs: int) -> None:
        """Count one batch of ``n_docs`` tokenized documents."""
        self.n_docs += n_docs
        self.n_tokens += tokens.word.size
        if tokens.word.size == 0:
            return
        ngrams = _fit_ngrams(tokens, n_docs, (self.min_n, self.max_n))
        df = np.bincount(ngrams.counts.indices, minlength=ngrams.counts.shape[1]).astype(np.int64)
        ids = self.word_ids
        for word in ngrams.words:
            if word not in ids:
                ids[word] = len(self.words)
                self.words.append(word)
        global_id = np.fromiter((ids[w] for w in ngrams.words), dtype=np.int32, count=len(ngrams.words))
        for i, k in enumerate(range(self.min_n, self.max_n + 1)):
            if k not in ngrams.offset:
                continue
            start = ngrams.offset[k]
            columns = np.arange(start, start + ngrams.last[k - 1].size)
            keys = global_id[ngrams.term_words(columns)[:, :k]]
            self.pending[i].append((keys, df[columns], ngrams.totals[columns].astype(np.int64)))
            self.n_pending += columns.size
        if self.n_pending >= max(_MERGE_MIN_ROWS, sum(keys.shape[0] for keys in self.keys)):
            self.merge()

    def merge(self) -> None:
        """Fold the waiting batch counts into the counted ones, then cut back to ``max_candidates``."""
        for i, waiting in enumerate(self.pending):
            if waiting:
                self.keys[i], self.df[i], self.total[i] = _reduce_rows(
                    np.concatenate([self.keys[i], *(w[0] for w in waiting)]),
                    np.concatenate([self.df[i], *(w[1] for w in waiting)]),
                    np.concatenate([self.total[i], *(w[2] for w in waiting)]),
                )
        self.pending = [[] for _ in self.pending]
        self.n_pending = 0
        if _prune(self.keys, self.df, self.total, self.max_candidates):
            self.pruned = True

    def table(self) -> _TermTable:
        """Everything counted so far."""
        self.merge()
        return _TermTable(self.words, self.keys, self.df, self.total, self.n_docs, self.n_tokens, self.pruned)


def _prune(keys: list[np.ndarray], df: list[np.ndarray], total: list[np.ndarray], max_candidates: int) -> bool:
    """Keep the ``max_candidates`` n-grams in the most documents (then most occurrences), in place; whether any went."""
    sizes = [k.shape[0] for k in keys]
    if sum(sizes) <= max_candidates:
        return False
    all_df, all_total = np.concatenate(df), np.concatenate(total)
    drop = np.lexsort((all_total, all_df))[: sum(sizes) - max_candidates]  # fewest documents first
    keep = np.ones(all_df.size, dtype=bool)
    keep[drop] = False
    bounds = np.cumsum([0, *sizes])
    for i in range(len(keys)):
        mask = keep[bounds[i] : bounds[i + 1]]
        keys[i], df[i], total[i] = keys[i][mask], df[i][mask], total[i][mask]
    logger.info(
        "TfidfFeaturizer: more than %d distinct n-grams (max_candidate_terms): dropped those in at most %d documents "
        "so far; document counts of rare terms may be approximate.",
        max_candidates,
        int(all_df[drop].max()),
    )
    return True


def _several_ranks() -> bool:
    """Whether torchrun started several processes (without importing torch, which one process does not need)."""
    if os.environ.get("WORLD_SIZE", "1") in ("", "1") and "torch.distributed" not in sys.modules:
        return False
    from textsae.distributed import world

    return world().distributed


def _rank_part(n_docs: int) -> slice:
    """This rank's contiguous part of ``n_docs`` documents (all of them in one process)."""
    if not _several_ranks():
        return slice(0, n_docs)
    from textsae.distributed import rank_slice

    return rank_slice(n_docs)


def _merge_tables(tables: list[_TermTable], max_candidates: int) -> _TermTable:
    """One table from several ranks' (in rank order): words renumbered by first appearance, counts summed."""
    word_ids: dict[str, int] = {}
    words: list[str] = []
    n_orders = len(tables[0].keys)
    keys: list[list[np.ndarray]] = [[] for _ in range(n_orders)]
    df: list[list[np.ndarray]] = [[] for _ in range(n_orders)]
    total: list[list[np.ndarray]] = [[] for _ in range(n_orders)]
    for table in tables:
        for word in table.words:
            if word not in word_ids:
                word_ids[word] = len(words)
                words.append(word)
        renumber = np.fromiter((word_ids[w] for w in table.words), dtype=np.int32, count=len(table.words))
        for i in range(n_orders):
            keys[i].append(renumber[table.keys[i]])
            df[i].append(table.df[i])
            total[i].append(table.total[i])
    merged = [
        _reduce_rows(np.concatenate(keys[i]), np.concatenate(df[i]), np.concatenate(total[i])) for i in range(n_orders)
    ]
    out_keys, out_df, out_total = [list(part) for part in zip(*merged, strict=True)]
    pruned = _prune(out_keys, out_df, out_total, max_candidates) or any(t.pruned for t in tables)
    return _TermTable(
        words,
        out_keys,
        out_df,
        out_total,
        sum(t.n_docs for t in tables),
        sum(t.n_tokens for t in tables),
        pruned,
    )


# --------------------------------------------------------------------------- the estimator


class TfidfFeaturizer(TransformerMixin, BaseEstimator, auto_wrap_output_keys=None):  # type: ignore[call-arg]  # sklearn takes this class keyword, mypy (untyped bases) checks object's; sparse out: no pandas wrap
    """Bag of word n-grams weighted by TF-IDF, raw counts or presence, as a float32 CSR matrix.

    Equal to scikit-learn's ``TfidfVectorizer`` (token pattern ``(?u)\\b\\w\\w+\\b``,
    ``use_idf=weighting == "tfidf"``, ``binary=weighting == "binary"``, ``dtype=np.float32``) and,
    for ``weighting="counts"`` with ``sublinear_tf=False, norm="none"``, to ``CountVectorizer``.
    The module docstring explains how it is computed.

    Weights (``n`` training documents, ``df(t)`` documents containing term ``t``)::

        tf'(t, d) = 1 + ln tf(t, d) if sublinear_tf else tf(t, d)   (binary: 1)
        idf(t)    = ln((1 + n) / (1 + df(t))) + 1  if smooth_idf  else  ln(n / df(t)) + 1
        x(t, d)   = tf'(t, d) * idf(t)  (tfidf)  or  tf'(t, d)  (counts, binary)

    Each row is then divided by its L2 or L1 norm. Rows that are all zero stay zero.

    Vocabulary selection follows sklearn. Terms whose document frequency is outside
    ``[min_df, max_df]`` are dropped (an int is a document count, a float in [0, 1] a fraction
    of documents). After that, if more than ``max_features`` terms remain, the ones with the
    largest total count over the corpus are kept (for ``binary``, the largest document
    frequency). Ties at the cut-off are broken exactly as sklearn breaks them: NumPy's default,
    unstable ``argsort`` of the negated float32 totals, taken over the candidate terms in sorted
    order. textsae and sklearn therefore keep the same terms on the same NumPy build. Which of
    several tied terms survive is otherwise unspecified and may change with the NumPy version or
    the CPU's SIMD support. The saved vocabulary fixes it for ``transform``. Columns are in
    sorted (code-point) order of the terms.

    Args:
        weighting: ``"tfidf"``, ``"counts"`` or ``"binary"``.
        lowercase: Lower-case with ``str.lower`` before tokenizing.
        ngram_range: ``(min_n, max_n)`` with ``1 <= min_n <= max_n``. An n-gram is n consecutive
            tokens of one document, joined by one space.
        max_features: Keep at most this many terms (see above); ``None`` keeps all.
        min_df: Drop terms in fewer documents than this (int count >= 0, or float fraction in [0, 1]).
        max_df: Drop terms in more documents than this (int count >= 1, or float fraction in [0, 1]).
        sublinear_tf: Use ``1 + ln tf`` instead of ``tf``.
        smooth_idf: Add one to document counts, as if one extra document held every term.
        norm: ``"l2"``, ``"l1"`` or ``"none"`` (``None`` is accepted for ``"none"``).
        max_candidate_terms: :meth:`fit_stream` counts at most this many distinct n-grams at once; past it the
            rarest are dropped (one log line) and rare terms' counts may be approximate. ``fit`` ignores it.

    Attributes:
        vocabulary_: ``dict`` from term to column index.
        idf_: ``(n_features_,)`` float32 idf weights for ``weighting="tfidf"``, else ``None``.
        n_features_: Number of columns.

    Example:
        >>> featurizer = TfidfFeaturizer(ngram_range=(1, 1), min_df=1, max_features=None)
        >>> featurizer.fit_transform(["a good film", "a bad film"]).shape
        (2, 3)
        >>> featurizer.get_feature_names_out().tolist()
        ['bad', 'film', 'good']
    """

    config_class = TfidfConfig
    """The ``featurizer`` section this featurizer is built from."""

    def __init__(
        self,
        *,
        weighting: str = _DEFAULTS.weighting,
        lowercase: bool = _DEFAULTS.lowercase,
        ngram_range: tuple[int, int] = _DEFAULTS.ngram_range,
        max_features: int | None = _DEFAULTS.max_features,
        min_df: float = _DEFAULTS.min_df,
        max_df: float = _DEFAULTS.max_df,
        sublinear_tf: bool = _DEFAULTS.sublinear_tf,
        smooth_idf: bool = _DEFAULTS.smooth_idf,
        norm: str | None = _DEFAULTS.norm,
        max_candidate_terms: int = _DEFAULTS.max_candidate_terms,
    ) -> None:
        self.weighting = weighting
        self.lowercase = lowercase
        self.ngram_range = ngram_range
        self.max_features = max_features
        self.min_df = min_df
        self.max_df = max_df
        self.sublinear_tf = sublinear_tf
        self.smooth_idf = smooth_idf
        self.norm = norm
        self.max_candidate_terms = max_candidate_terms

    @classmethod
    def from_config(cls, cfg: FeaturizerConfig, runtime: RuntimeConfig | None = None) -> TfidfFeaturizer:
        """An unfitted featurizer with the TF-IDF parameters of ``cfg`` (its constructor's arguments).

        Args:
            cfg: The ``featurizer`` section of a recipe; ``cfg.kind`` must be ``"tfidf"``.
            runtime: Unused (TF-IDF runs on the CPU in NumPy); accepted like every featurizer's.

        Returns:
            The featurizer.

        Raises:
            UserError: ``cfg.kind`` is not ``"tfidf"``.
        """
        if not isinstance(cfg, TfidfConfig):
            raise UserError(f"TfidfFeaturizer.from_config needs featurizer.kind='tfidf'. Got {cfg.kind!r} instead.")
        names = inspect.signature(cls.__init__).parameters.keys() - {"self"}
        return cls(**{f.name: getattr(cfg, f.name) for f in fields(cfg) if f.name in names})

    # ------------------------------------------------------------------ fit / transform

    def fit(self, texts: Iterable[str], y: Any = None) -> TfidfFeaturizer:
        """Learn the vocabulary (and idf) from ``texts``.

        Args:
            texts: An iterable of documents (str; bytes are decoded as UTF-8).
            y: Ignored; accepted for ``Pipeline``.

        Returns:
            ``self``.

        Raises:
            UserError: Bad parameters, ``texts`` is a single string or empty, or no term survives.
        """
        self.fit_transform(texts)
        return self

    def fit_transform(self, texts: Iterable[str], y: Any = None) -> sp.csr_matrix:
        """Learn the vocabulary from ``texts`` and return their features (faster than fit + transform).

        Args:
            texts: An iterable of documents (str; bytes are decoded as UTF-8).
            y: Ignored; accepted for ``Pipeline``.

        Returns:
            ``(n_docs, n_features_)`` float32 CSR matrix with sorted indices.

        Raises:
            UserError: Bad parameters, ``texts`` is a single string or empty, or no term survives.
        """
        params = self._checked_params()
        docs = _as_documents(texts, "fit")
        if not docs:
            raise UserError("TfidfFeaturizer.fit got no documents. Expected a non-empty iterable of str.")
        tokens = _tokenize(docs, params["lowercase"])
        ngrams = _fit_ngrams(tokens, len(docs), params["ngram_range"])
        if ngrams.counts.shape[1] == 0:
            raise UserError(
                "Empty vocabulary: no document has a token of two or more word characters "
                f"(pattern {TOKEN_PATTERN}) for ngram_range={params['ngram_range']}. Expected some real text."
            )
        counts, terms, df = self._limit_features(ngrams, params)
        self.vocabulary_ = dict(zip(terms, range(len(terms)), strict=True))
        self.n_features_ = len(terms)
        self.idf_ = self._idf(df, len(docs)) if params["weighting"] == "tfidf" else None
        self._lookup: _Lookup | None = None
        logger.info("TfidfFeaturizer: %d documents, %d tokens, kept %d terms.", len(docs), tokens.word.size, len(terms))
        return self._weight(counts, params)

    def transform(self, texts: Iterable[str]) -> sp.csr_matrix:
        """Features of ``texts`` over the fitted vocabulary.

        Args:
            texts: An iterable of documents (str; bytes are decoded as UTF-8). Empty gives ``(0, n_features_)``.

        Returns:
            ``(n_docs, n_features_)`` float32 CSR matrix with sorted indices.

        Raises:
            NotFittedError: Called before ``fit``.
            UserError: ``texts`` is a single string or holds a non-text item.
        """
        check_is_fitted(self, "vocabulary_")
        params = self._checked_params()
        docs = _as_documents(texts, "transform")
        tokens = _tokenize(docs, params["lowercase"])
        counts = _transform_ngrams(tokens, len(docs), self._get_lookup(), params["ngram_range"], self.n_features_)
        return self._weight(counts, params)

    def fit_stream(self, texts: Sequence[str], *, batch_docs: int = STREAM_BATCH_DOCS) -> TfidfFeaturizer:
        """Learn the vocabulary and idf in one counting pass over ``texts`` in batches, split over ranks.

        Memory follows the batch and the counted n-grams (at most ``max_candidate_terms``), not the number of
        documents. Under ``torchrun`` every rank counts its contiguous part (:func:`textsae.distributed.rank_slice`)
        and the counts are gathered, so every rank ends with the same vocabulary and idf; unless n-grams were
        dropped at ``max_candidate_terms``, these equal :meth:`fit` on all of ``texts`` in one process. Every
        rank must call it (a collective).

        Args:
            texts: The documents: a list, or any sequence with an ``iter_batches(batch_docs, start=, stop=)``
                method (a streamed split's :class:`~textsae.data.stream.LazyTexts`) that is read in batches.
            batch_docs: Documents tokenized at once.

        Returns:
            ``self``.

        Raises:
            UserError: Bad parameters, no documents, a non-text document (named by its index), or no term survives.
        """
        part = _rank_part(len(texts))
        reader = getattr(texts, "iter_batches", None)
        if callable(reader):
            batches: Iterable[Sequence[str]] = reader(batch_docs, start=part.start, stop=part.stop)
        else:
            batches = (texts[a : min(a + batch_docs, part.stop)] for a in range(part.start, part.stop, batch_docs))
        return self.fit_batches(batches, first_doc=part.start, reduce_ranks=True)

    def fit_batches(
        self, batches: Iterable[Sequence[str]], *, first_doc: int = 0, reduce_ranks: bool = False
    ) -> TfidfFeaturizer:
        """Learn the vocabulary and idf from documents given in batches (the counting pass of :meth:`fit_stream`).

        Args:
            batches: Lists of documents, in order.
            first_doc: Index of the first document (for messages naming a bad document).
            reduce_ranks: Each rank passes its own documents; gather every rank's counts (a collective) so all
                ranks learn the same vocabulary from all of them. Without it, these batches are the whole corpus.

        Returns:
            ``self``.
        """
        params = self._checked_params()
        gather = reduce_ranks and _several_ranks()
        try:
            table: _TermTable | None = self._count(batches, first_doc, params)
            failure = None
        except UserError as error:
            if not gather:
                raise
            table, failure = None, str(error)
        if gather:
            from textsae.distributed import all_gather_objects

            # Every rank reaches the gather, a failed one too, so that a bad document on one rank stops them all.
            gathered = all_gather_objects((table, failure))
            failures = [message for _, message in gathered if message is not None]
            if failures:
                raise UserError(failures[0])
            table = _merge_tables([part for part, _ in gathered if part is not None], int(self.max_candidate_terms))
        assert table is not None
        if table.n_docs == 0:
            raise UserError("TfidfFeaturizer.fit got no documents. Expected a non-empty iterable of str.")
        if sum(keys.shape[0] for keys in table.keys) == 0:
            raise UserError(
                "Empty vocabulary: no document has a token of two or more word characters "
                f"(pattern {TOKEN_PATTERN}) for ngram_range={params['ngram_range']}. Expected some real text."
            )
        terms, df = self._select_terms(table, params)
        self.vocabulary_ = dict(zip(terms, range(len(terms)), strict=True))
        self.n_features_ = len(terms)
        self.idf_ = self._idf(df, table.n_docs) if params["weighting"] == "tfidf" else None
        self._lookup = None
        logger.info(
            "TfidfFeaturizer (streamed): %d documents, %d tokens, %d candidate n-grams, kept %d terms.",
            table.n_docs,
            table.n_tokens,
            sum(keys.shape[0] for keys in table.keys),
            len(terms),
        )
        return self

    def _count(self, batches: Iterable[Sequence[str]], first_doc: int, params: dict[str, Any]) -> _TermTable:
        """The counting pass over this process's batches."""
        counter = _TermCounter(params["ngram_range"], int(self.max_candidate_terms))
        position = first_doc
        for batch in batches:
            docs = _as_documents(batch, "fit", first=position)
            position += len(docs)
            counter.add(_tokenize(docs, params["lowercase"]), len(docs))
        return counter.table()

    def iter_transform(
        self, texts: Sequence[str], *, batch_docs: int = STREAM_BATCH_DOCS, start: int = 0, stop: int | None = None
    ) -> Iterator[tuple[int, sp.csr_matrix]]:
        """:meth:`transform` of documents ``start..stop-1`` of ``texts`` in batches: ``(first document, rows)``.

        ``texts`` is read as in :meth:`fit_stream` (a list, or a sequence with ``iter_batches``); the rows equal
        those of ``transform(texts)[start:stop]``.
        """
        stop = len(texts) if stop is None else min(stop, len(texts))
        reader = getattr(texts, "iter_batches", None)
        if callable(reader):
            batches: Iterable[Sequence[str]] = reader(batch_docs, start=start, stop=stop)
        else:
            batches = (texts[a : min(a + batch_docs, stop)] for a in range(start, stop, batch_docs))
        position = start
        for batch in batches:
            yield position, self.transform(batch)
            position += len(batch)

    def _select_terms(self, table: _TermTable, params: dict[str, Any]) -> tuple[list[str], np.ndarray]:
        """:meth:`_limit_features` on counted n-grams: the same terms, in the same (sorted) order."""
        n_docs = table.n_docs
        low, high = self._df_bounds(n_docs)
        max_n = params["ngram_range"][1]
        words_of, df_of, total_of = [], [], []
        for keys, df, total in zip(table.keys, table.df, table.total, strict=True):
            keep = (df <= high) & (df >= low)
            padded = np.full((int(keep.sum()), max_n), -1, dtype=np.int64)
            padded[:, : keys.shape[1]] = keys[keep]
            words_of.append(padded)
            df_of.append(df[keep])
            total_of.append(total[keep])
        term_words = np.concatenate(words_of)
        if term_words.shape[0] == 0:
            raise UserError("After pruning, no terms remain. Try a lower min_df or a higher max_df.")
        rank = np.empty(len(table.words), dtype=np.int64)
        rank[sorted(range(len(table.words)), key=table.words.__getitem__)] = np.arange(len(table.words))
        ranks = np.where(term_words >= 0, rank[np.maximum(term_words, 0)], -1)
        kept = np.lexsort(ranks.T[::-1])  # candidates in sorted term order, as sklearn holds them
        df_all, total_all = np.concatenate(df_of), np.concatenate(total_of)
        if self.max_features is not None and kept.size > self.max_features:
            totals = df_all if params["weighting"] == "binary" else total_all
            tfs = totals[kept].astype(np.float32)  # the same float32 array, in the same order, as _limit_features
            kept = kept[np.sort((-tfs).argsort()[: self.max_features])]
        words = table.words
        terms = [" ".join(words[w] for w in row if w >= 0) for row in term_words[kept].tolist()]
        return terms, df_all[kept]

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """Terms in column order, as an object array of str (``input_features`` is ignored)."""
        check_is_fitted(self, "vocabulary_")
        names = np.empty(len(self.vocabulary_), dtype=object)
        names[list(self.vocabulary_.values())] = list(self.vocabulary_.keys())
        return names

    @property
    def n_features(self) -> int:
        """Number of columns that :meth:`transform` returns (``n_features_``)."""
        check_is_fitted(self, "vocabulary_")
        return self.n_features_

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.string = True
        tags.input_tags.two_d_array = False
        return tags

    # ------------------------------------------------------------------ save / load

    def save_pretrained(self, directory: str | os.PathLike[str]) -> None:
        """Write ``vocab.json``, ``idf.safetensors`` (tfidf only) and, last, ``config.json``.

        Every file is written atomically (temporary file + rename); no pickle is involved.

        Args:
            directory: Target directory (created if needed).

        Raises:
            NotFittedError: Called before ``fit``.
        """
        from safetensors.numpy import save as save_tensors

        check_is_fitted(self, "vocabulary_")
        target = Path(directory)
        _atomic_write_compact_json(target / VOCAB_NAME, self.get_feature_names_out().tolist())
        if self.idf_ is not None:
            atomic_write_bytes(
                target / IDF_NAME, save_tensors({"idf": np.ascontiguousarray(self.idf_, dtype=np.float32)})
            )
        elif (target / IDF_NAME).exists():
            (target / IDF_NAME).unlink()  # stale idf from an earlier tfidf save into the same directory
        params = {key: (list(value) if isinstance(value, tuple) else value) for key, value in self.get_params().items()}
        config = {"kind": KIND, "params": params, "n_features": self.n_features_, "versions": library_versions()}
        atomic_write_json(target / CONFIG_NAME, config)

    @classmethod
    def from_pretrained(
        cls, directory: str | os.PathLike[str], *, trust_remote_code: bool = False, allow_pickle: bool = False
    ) -> TfidfFeaturizer:
        """Load a featurizer written by :meth:`save_pretrained`.

        Args:
            directory: The saved directory.
            trust_remote_code: Ignored (TF-IDF loads no model); accepted like every featurizer's.
            allow_pickle: Ignored; the vocabulary and idf are read with ``allow_pickle=False``.

        Returns:
            The fitted featurizer.

        Raises:
            UserError: A file is missing or corrupt (the message names it), or the files disagree.
        """
        directory = Path(directory)
        config = read_featurizer_config(directory)
        config_path = directory / CONFIG_NAME
        if config["kind"] != KIND:
            raise UserError(f"{config_path}: kind is {config['kind']!r}. Expected {KIND!r} for TfidfFeaturizer.")
        params = dict(config["params"])
        if "ngram_range" in params and isinstance(params["ngram_range"], list):
            params["ngram_range"] = tuple(params["ngram_range"])
        try:
            featurizer = cls(**params)
            checked = featurizer._checked_params()
        except (TypeError, UserError) as exc:
            raise UserError(f"{config_path}: invalid params ({exc}).") from exc
        terms = _read_vocab(directory / VOCAB_NAME, checked["ngram_range"])
        if config.get("n_features", len(terms)) != len(terms):
            raise UserError(
                f"{directory / VOCAB_NAME}: holds {len(terms)} terms but {config_path} says n_features={config['n_features']}."
            )
        featurizer.vocabulary_ = dict(zip(terms, range(len(terms)), strict=True))
        featurizer.n_features_ = len(terms)
        featurizer.idf_ = _read_idf(directory / IDF_NAME, len(terms)) if checked["weighting"] == "tfidf" else None
        featurizer._lookup = None
        return featurizer

    # ------------------------------------------------------------------ helpers

    def _checked_params(self) -> dict[str, Any]:
        """Validated, normalised parameters (errors follow sklearn's wording)."""
        name = type(self).__name__
        problems = []

        def bad(param: str, expected: str) -> None:
            problems.append(
                f"The {param!r} parameter of {name} must be {expected}. Got {getattr(self, param)!r} instead."
            )

        if self.weighting not in _WEIGHTINGS:
            bad("weighting", f"one of {list(_WEIGHTINGS)}")
        norm = "none" if self.norm is None else self.norm
        if norm not in _NORMS:
            bad("norm", f"one of {list(_NORMS)} (or None)")
        for param in ("lowercase", "sublinear_tf", "smooth_idf"):
            if not isinstance(getattr(self, param), (bool, np.bool_)):
                bad(param, "a bool")
        ngram = self.ngram_range
        ngram_ok = (
            isinstance(ngram, (tuple, list))
            and len(ngram) == 2
            and all(_is_int(v) for v in ngram)
            and 1 <= ngram[0] <= ngram[1]
        )
        if not ngram_ok:
            bad("ngram_range", "a tuple (min_n, max_n) of ints with 1 <= min_n <= max_n")
        if self.max_features is not None and not (_is_int(self.max_features) and self.max_features >= 1):
            bad("max_features", "an int >= 1 or None")
        if not (_is_int(self.max_candidate_terms) and self.max_candidate_terms >= 1):
            bad("max_candidate_terms", "an int >= 1")
        if not _valid_df(self.min_df, min_count=0):
            bad("min_df", "an int >= 0 (a document count) or a float in [0.0, 1.0] (a fraction of documents)")
        if not _valid_df(self.max_df, min_count=1):
            bad("max_df", "an int >= 1 (a document count) or a float in [0.0, 1.0] (a fraction of documents)")
        if problems:
            raise UserError("\n".join(problems))
        return {
            "weighting": self.weighting,
            "lowercase": bool(self.lowercase),
            "ngram_range": (int(ngram[0]), int(ngram[1])),
            "norm": None if norm == "none" else norm,
        }

    def _df_bounds(self, n_docs: int) -> tuple[float, float]:
        """``(low, high)``: the document frequencies ``min_df`` and ``max_df`` allow out of ``n_docs`` documents.

        Raises:
            UserError: ``max_df`` allows fewer documents than ``min_df``.
        """
        high = self.max_df if _is_int(self.max_df) else self.max_df * n_docs
        low = self.min_df if _is_int(self.min_df) else self.min_df * n_docs
        if high < low:
            raise UserError(
                f"max_df={self.max_df!r} corresponds to {high:g} documents, fewer than min_df={self.min_df!r} "
                f"({low:g} documents) out of {n_docs}. Expected max_df to allow at least as many documents as min_df."
            )
        return low, high

    def _limit_features(self, ngrams: _Ngrams, params: dict[str, Any]) -> tuple[sp.csr_matrix, list[str], np.ndarray]:
        """sklearn's ``_limit_features``: df pruning, then ``max_features``; columns end up sorted by term."""
        counts = ngrams.counts
        n_docs = counts.shape[0]
        df = np.bincount(counts.indices, minlength=counts.shape[1])
        low, high = self._df_bounds(n_docs)
        candidates = np.flatnonzero((df <= high) & (df >= low))
        if candidates.size == 0:
            raise UserError("After pruning, no terms remain. Try a lower min_df or a higher max_df.")
        kept = candidates[ngrams.sorted_order(candidates)]  # in sorted term order, as sklearn holds them
        if self.max_features is not None and kept.size > self.max_features:
            # The same call on the same float32 array as sklearn, so ties resolve identically. Totals are
            # exact int64 sums cast to float32 (sklearn sums in float32: equal below 2**24 per term).
            totals = df if params["weighting"] == "binary" else ngrams.totals
            tfs = totals[kept].astype(np.float32)
            kept = kept[np.sort((-tfs).argsort()[: self.max_features])]
        column = np.full(counts.shape[1], -1, dtype=np.int64)
        column[kept] = np.arange(kept.size)
        return _select_columns(counts, column, kept.size), ngrams.term_strings(kept), df[kept]

    def _idf(self, df: np.ndarray, n_docs: int) -> np.ndarray:
        """float32 idf like sklearn's TfidfTransformer (computed in float32 in the same order)."""
        smooth = int(bool(self.smooth_idf))
        df32 = df.astype(np.float32) + np.float32(smooth)
        idf = np.full(df32.shape, n_docs + smooth, dtype=np.float32) / df32
        np.log(idf, out=idf)
        idf += np.float32(1.0)
        return idf

    def _weight(self, counts: sp.csr_matrix, params: dict[str, Any]) -> sp.csr_matrix:
        """Counts → binary / sublinear tf → idf → row norm, in place on ``counts.data`` (float32)."""
        data = counts.data
        if params["weighting"] == "binary":
            data[:] = 1.0
        elif self.sublinear_tf:
            np.log(data, out=data)
            data += np.float32(1.0)
        if self.idf_ is not None and params["weighting"] == "tfidf":
            data *= self.idf_[counts.indices]
        if params["norm"] is not None and data.size:
            rows = np.repeat(np.arange(counts.shape[0]), np.diff(counts.indptr))
            values = data.astype(np.float64)
            per_row = np.square(values) if params["norm"] == "l2" else np.abs(values)
            norms = np.bincount(rows, weights=per_row, minlength=counts.shape[0])
            if params["norm"] == "l2":
                norms = np.sqrt(norms)
            norms[norms == 0.0] = 1.0
            data[:] = values / norms[rows]
        return counts

    def _get_lookup(self) -> _Lookup:
        lookup = getattr(self, "_lookup", None)
        if lookup is None:
            lookup = self._lookup = _build_lookup(self.get_feature_names_out().tolist())
        return lookup


# --------------------------------------------------------------------------- small helpers


def _is_int(value: Any) -> bool:
    return isinstance(value, Integral) and not isinstance(value, (bool, np.bool_))


def _valid_df(value: Any, min_count: int) -> bool:
    if _is_int(value):
        return value >= min_count
    return isinstance(value, Real) and not isinstance(value, (bool, np.bool_)) and 0.0 <= float(value) <= 1.0


def _as_documents(texts: Iterable[str], caller: str, first: int = 0) -> list[str]:
    """``texts`` as a list of str, with sklearn's checks (a lone string is an error, bytes are decoded); a bad
    document is named by its index plus ``first`` (a batch's place in a stream)."""
    if isinstance(texts, (str, bytes)):
        raise UserError(
            f"TfidfFeaturizer.{caller}: Iterable over raw text documents expected, string object received. "
            "Wrap a single document in a list: [text]."
        )
    try:
        docs = list(texts)
    except TypeError as exc:
        raise UserError(
            f"TfidfFeaturizer.{caller}: Iterable over raw text documents expected. Got {type(texts).__name__} instead."
        ) from exc
    if all(type(doc) is str for doc in docs):
        return docs
    for i, doc in enumerate(docs):
        if isinstance(doc, bytes):
            try:
                docs[i] = doc.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise UserError(
                    f"TfidfFeaturizer.{caller}: document {first + i} is bytes that are not valid UTF-8 ({exc}). Expected str or UTF-8 bytes."
                ) from exc
        elif isinstance(doc, str):
            docs[i] = str(doc)
        else:
            missing = isinstance(doc, float) and math.isnan(doc)
            got = "NaN (a missing value)" if missing else f"{type(doc).__name__} {doc!r:.60}"
            raise UserError(
                f"TfidfFeaturizer.{caller}: document {first + i} is {got}. Expected str (drop or fill missing texts first)."
            )
    return docs


def _select_columns(counts: sp.csr_matrix, column: np.ndarray, n_columns: int) -> sp.csr_matrix:
    """Keep the columns with ``column[j] >= 0`` and renumber them to ``column[j]``; indices sorted."""
    new_index = column[counts.indices]
    keep = new_index >= 0
    kept_before = np.concatenate(([0], np.cumsum(keep, dtype=np.int64)))  # kept entries before each position
    indptr = kept_before[counts.indptr]
    selected = sp.csr_matrix((counts.data[keep], new_index[keep], indptr), shape=(counts.shape[0], n_columns))
    selected.has_sorted_indices = False
    selected.sort_indices()
    return selected


def _atomic_write_compact_json(path: Path, obj: Any) -> None:
    """Compact JSON (one line) written atomically; vocabularies are large, so no indentation."""
    atomic_write_bytes(path, (json.dumps(obj, ensure_ascii=False) + "\n").encode("utf-8"))


def _read_vocab(path: Path, ngram_range: tuple[int, int]) -> list[str]:
    """Read and check ``vocab.json``: a non-empty list of distinct, tokenizable n-grams."""
    if not path.is_file():
        raise UserError(f"{path}: file is missing. Expected the vocabulary that save_pretrained() writes.")
    terms = read_json_checked(path, "a JSON list of terms")
    if not isinstance(terms, list) or not terms or not all(isinstance(t, str) for t in terms):
        raise UserError(
            f"{path}: expected a non-empty JSON list of strings (terms in column order). Got {type(terms).__name__} instead."
        )
    if len(set(terms)) != len(terms):
        raise UserError(f"{path}: holds duplicate terms. Expected each term once.")
    pattern = re.compile(TOKEN_PATTERN)
    min_n, max_n = ngram_range
    for i, term in enumerate(terms):
        parts = pattern.findall(term)
        if " ".join(parts) != term or not min_n <= len(parts) <= max_n:
            raise UserError(
                f"{path}: term {i} ({term!r}) is not a {min_n}..{max_n}-gram of tokens joined by single spaces."
            )
    return terms


def _read_idf(path: Path, n_features: int) -> np.ndarray:
    """Read and check ``idf.safetensors``: float32 ``idf`` of length ``n_features``."""
    from safetensors.numpy import load as load_tensors

    if not path.is_file():
        raise UserError(
            f"{path}: file is missing. Expected the idf weights that save_pretrained() writes for weighting='tfidf'."
        )
    try:
        idf = load_tensors(path.read_bytes())["idf"]
    except Exception as exc:  # safetensors raises its own error types for corrupt headers
        raise UserError(
            f"{path}: cannot be read as safetensors with an 'idf' tensor ({type(exc).__name__}: {exc})."
        ) from exc
    if idf.dtype != np.float32 or idf.shape != (n_features,) or not np.all(np.isfinite(idf)):
        raise UserError(
            f"{path}: expected a finite float32 'idf' of shape ({n_features},). Got {idf.dtype} {idf.shape} instead."
        )
    return idf
