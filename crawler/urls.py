"""Canonical URLs: one article, one URL, whatever tracking, host or AMP variant linked to it."""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

# Query parameters that identify a campaign or a click, never an article.
TRACKING_PARAMS = re.compile(
    r"^(utm_\w+|fbclid|gclid|yclid|ysclid|_openstat|mc_cid|mc_eid|igshid|ref|ref_src|from|"
    r"amp|output|share|_ga|spm)$",
    re.IGNORECASE,
)
HOST_PREFIXES = ("www.", "m.", "mobile.", "amp.")
AMP_PATH = re.compile(r"(/amp/?$|^/amp(?=/)|\.amp(?=\.html?$|$))")


def canonical_host(host: str) -> str:
    host = host.lower().rstrip(".")
    for prefix in HOST_PREFIXES:
        if host.startswith(prefix) and host.count(".") >= 2:
            return host[len(prefix) :]
    return host


def canonical_url(url: str) -> str:
    """Fold the variants of an article URL into one.

    Lower-cases scheme and host, drops ``www.``/``m.``/``amp.`` hosts, tracking
    parameters, fragments, AMP path markers, default ports and trailing slashes; sorts the
    remaining query. The scheme is kept (it is needed to fetch the URL again); item ids
    ignore it (see ``crawler.items.item_id``).
    """
    parts = urlsplit(url.strip())
    host = canonical_host(parts.hostname or "")
    port = parts.port
    netloc = host if port in (None, 80, 443) else f"{host}:{port}"
    path = AMP_PATH.sub("", parts.path) or "/"
    path = re.sub(r"/{2,}", "/", path)
    if len(path) > 1:
        path = path.rstrip("/")
    query = urlencode(
        sorted(
            (k, v)
            for k, v in parse_qsl(parts.query, keep_blank_values=True)
            if not TRACKING_PARAMS.match(k)
        )
    )
    return urlunsplit((parts.scheme.lower(), netloc, path, query, ""))
