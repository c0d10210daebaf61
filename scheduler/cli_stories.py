"""`presswatch stories` and `presswatch story ID`: review stories, their originals and copies."""

from __future__ import annotations
