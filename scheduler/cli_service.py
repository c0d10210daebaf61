"""`presswatch run` and `presswatch status`: the scheduling service and what it is doing."""

from __future__ import annotations
