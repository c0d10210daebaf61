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
# What we fetch; the egress policy refuses everything else, and so does config loading.
ALLOWED_SCHEMES = frozenset({"http", "https"})
SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")
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


def fetchable_url(url: str) -> str:
    """`url` when it is an absolute http(s) URL with a host, for validating configuration.

    Raises ValueError saying what is missing and how to fix it: ``tengrinews.kz/rss`` lacks
    a scheme (without one it would be read as a path), so the message says to add https://.
    """
    url = url.strip()
    scheme = SCHEME.match(url)
    if url.startswith("//") or scheme is None or not url[scheme.end() :].startswith("//"):
        # "www.x.kz:8080/news" parses as scheme "www.x.kz": a host with a port, not a scheme.
        suggestion = "https:" + url if url.startswith("//") else "https://" + url
        msg = f"{url!r} has no scheme: add https:// ({suggestion})"
        raise ValueError(msg)
    if scheme.group(1).lower() not in ALLOWED_SCHEMES:
        msg = f"{url!r}: scheme {scheme.group(1)!r} is not http or https"
        raise ValueError(msg)
    if not urlsplit(url).hostname:
        msg = f"{url!r} has no host"
        raise ValueError(msg)
    return url
