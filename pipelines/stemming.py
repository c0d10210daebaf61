"""Snowball stemmers, one per thread: a stemmer keeps the word it stems in itself.

Threads sharing one corrupt each other (IndexError in find_among_b), and a multi-source
crawl links items in one store thread per source.
"""

from __future__ import annotations

import threading

import snowballstemmer

_thread_local = threading.local()


def stemmer(language: str) -> snowballstemmer.stemmer:
    """This thread's snowball stemmer for `language` ("russian", "english", ...)."""
    stemmers = _thread_local.__dict__.setdefault("stemmers", {})
    if language not in stemmers:
        stemmers[language] = snowballstemmer.stemmer(language)
    return stemmers[language]
