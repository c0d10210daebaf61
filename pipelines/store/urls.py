"""Store URLs as they may be shown: in messages, tables, logs and errors, never a password.

Every place that prints a store URL (the demo, `status`, errors from a crawl or a store)
goes through `redact_url`; text that may quote the URL verbatim goes through
`redact_password`.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

REDACTED = "***"
PASSWORD_PARAM = "password"  # noqa: S105 -- a query key: redis-py reads ?password= too


def redact_url(url: str) -> str:
    """`url` with any password (in the authority or a ``password=`` parameter) as ``***``;
    a URL without one as it is (``urlunsplit`` would turn ``sqlite:///x`` into ``sqlite:/x``)."""
    if not passwords(url):
        return url
    parts = urlsplit(url)
    netloc = parts.netloc
    if parts.password is not None:
        userinfo, _, hostport = netloc.rpartition("@")
        username = userinfo.split(":", 1)[0]
        netloc = f"{username}:{REDACTED}@{hostport}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        shown = [(k, REDACTED if k == PASSWORD_PARAM else v) for k, v in pairs]
        query = urlencode(shown, safe="*:/")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def passwords(url: str) -> set[str]:
    """The passwords `url` carries, as written, decoded and re-quoted."""
    parts = urlsplit(url)
    found = [v for k, v in parse_qsl(parts.query) if k == PASSWORD_PARAM]
    userinfo, at, _ = parts.netloc.rpartition("@")
    if at and ":" in userinfo:
        found.append(userinfo.split(":", 1)[1])
    forms = set()
    for password in filter(None, found):
        forms |= {password, unquote(password), quote(unquote(password), safe="")}
    return forms


def redact_password(text: str, url: str) -> str:
    """`text` with `url` and every password in it replaced (the URL shown redacted)."""
    text = text.replace(url, redact_url(url))
    for password in sorted(passwords(url), key=len, reverse=True):
        text = text.replace(password, REDACTED)
    return text
