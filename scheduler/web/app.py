"""The dashboard's ASGI app: `create_app(store)` builds it, with its guards around every route.

The guards, outermost first (see RELIABILITY.md I4 and X4):

- security headers on every response, errors included: a CSP that allows no script and no
  inline style (``default-src 'none'; style-src 'self'; img-src 'self';
  frame-ancestors 'none'``), ``nosniff``, no referrer to the portals items link to;
- a Host-header allowlist (`allowed_hosts`), so a DNS-rebinding page cannot read the UI;
- with a `token`: every route but ``/static/`` answers 401 without it. The token is the
  password of HTTP basic auth (any user name) or an ``Authorization: Bearer`` value,
  compared in constant time; a client with too many wrong tries in a minute gets 429.

The app only reads: every route is GET (HEAD), so POST, PUT and DELETE answer 405, and there
is no form that changes anything (the filter forms are GETs), hence no CSRF token.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import threading
import time
from collections import deque
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import jinja2
from starlette.applications import Starlette
from starlette.datastructures import Headers, MutableHeaders
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.responses import PlainTextResponse
from starlette.templating import Jinja2Templates

from scheduler.display import display_zone, shown_time
from scheduler.web.views import safe_href

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Sequence
    from zoneinfo import ZoneInfo

    from starlette.types import ASGIApp, Message, Receive, Scope, Send

    from crawler.config import Source
    from pipelines.store import Store
    from pipelines.store.outbox import Outbox
    from pipelines.story_index import StoryIndex
    from scheduler.rules import RulesFile

HERE = Path(__file__).parent
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
SECURITY_HEADERS = {
    "content-security-policy": (
        "default-src 'none'; style-src 'self'; img-src 'self'; frame-ancestors 'none'"
    ),
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",  # pages may hold what only the token holder may read
}
OPEN_PREFIXES = ("/static/",)  # served without the token: the stylesheet holds no data
FAILED_TRIES = 10  # wrong tokens a client may send in `TRY_WINDOW_S` before it waits
TRY_WINDOW_S = 60.0


@dataclass
class Dashboard:
    """What the routes read, opened once: the store, its story index and outbox, and the
    configured sources and rules. One request reads at a time (`lock`): a store connection
    is not for two threads at once, and one reviewer's clicks need no more."""

    store: Store
    sources: list[Source] = field(default_factory=list)
    rules: RulesFile | None = None
    zone: ZoneInfo = field(default_factory=display_zone)
    lock: threading.Lock = field(default_factory=threading.Lock)
    _index: StoryIndex | None = None
    _outbox: Outbox | None = None

    @property
    def index(self) -> StoryIndex:
        if self._index is None:
            self._index = self.store.story_index()
        return self._index

    @property
    def outbox(self) -> Outbox:
        if self._outbox is None:
            self._outbox = self.store.outbox()
        return self._outbox

    def source(self, name: str) -> Source | None:
        return next((s for s in self.sources if s.name == name), None)

    def close(self) -> None:
        for part in (self._index, self._outbox):
            if part is not None:
                part.close()


class SecurityHeaders:
    """Adds `SECURITY_HEADERS` to every HTTP response (and drops the server's name)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    headers[name] = value
                del headers["server"]
            await send(message)

        await self.app(scope, receive, send_with_headers)


def presented_token(headers: Headers) -> str | None:
    """The token in an ``Authorization`` header: a basic-auth password or a bearer value."""
    scheme, _, value = headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer":
        return value.strip()
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        return decoded.partition(":")[2]
    return None


class TokenGuard:
    """401 for every request without the token, except under `OPEN_PREFIXES`; 429 for a
    client that sent `FAILED_TRIES` wrong ones in the last `TRY_WINDOW_S` seconds."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self.token = token.encode("utf-8")
        self.failures: dict[str, deque[float]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(OPEN_PREFIXES):
            await self.app(scope, receive, send)
            return
        client = scope["client"][0] if scope.get("client") else "?"
        recent = self.failures.setdefault(client, deque())
        now = time.monotonic()
        while recent and recent[0] < now - TRY_WINDOW_S:
            recent.popleft()
        if len(recent) >= FAILED_TRIES:
            refusal = PlainTextResponse(
                "too many wrong tokens; wait a minute", 429, {"retry-after": str(TRY_WINDOW_S)}
            )
            await refusal(scope, receive, send)
            return
        given = presented_token(Headers(scope=scope))
        if given is not None and hmac.compare_digest(given.encode("utf-8"), self.token):
            self.failures.pop(client, None)  # whoever holds the token is not guessing
            await self.app(scope, receive, send)
            return
        if given is not None:
            recent.append(now)
        challenge = PlainTextResponse(
            "the Presswatch dashboard needs its token (PRESSWATCH_WEB_TOKEN) as the password",
            401,
            {"www-authenticate": 'Basic realm="Presswatch", charset="UTF-8"'},
        )
        await challenge(scope, receive, send)


def template_environment(zone: ZoneInfo) -> jinja2.Environment:
    """Every template is HTML and escaped, whatever its name: autoescape is on for all."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["when"] = lambda value: shown_time(value, zone, missing="?")
    env.filters["safe_href"] = safe_href
    # Ids hold slashes ("caravan/slug"): kept as path segments, everything else quoted.
    env.filters["path"] = lambda value: quote(str(value), safe="/")
    env.globals["zone"] = zone.key
    return env


def create_app(
    store: Store,
    *,
    token: str | None = None,
    allowed_hosts: Sequence[str] = LOOPBACK_HOSTS,
    sources: list[Source] | None = None,
    rules: RulesFile | None = None,
) -> Starlette:
    """The dashboard over `store` (closed by the caller). With `token`, every page needs it;
    `allowed_hosts` are the Host names it answers to (the name or address it is reached by)."""
    from starlette.staticfiles import StaticFiles

    from scheduler.web.routes import ROUTES, error_handlers

    dashboard = Dashboard(store, sources=list(sources or []), rules=rules)

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        yield
        dashboard.close()

    middleware = [
        Middleware(SecurityHeaders),
        Middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts), www_redirect=False),
    ]
    if token:
        middleware.append(Middleware(TokenGuard, token=token))
    from starlette.routing import Mount

    app = Starlette(
        routes=[*ROUTES, Mount("/static", StaticFiles(directory=HERE / "static"), name="static")],
        middleware=middleware,
        exception_handlers=error_handlers(),
        lifespan=lifespan,
    )
    app.state.dashboard = dashboard
    app.state.templates = Jinja2Templates(env=template_environment(dashboard.zone))
    return app


def dashboard_of(app: Any) -> Dashboard:
    return app.state.dashboard
