"""`presswatch web`: serve the review dashboard (`scheduler.web`) with uvicorn.

It binds 127.0.0.1 by default. Any other address (another 127.x too) needs a token
(``PRESSWATCH_WEB_TOKEN`` or ``--token-file``): without one the command refuses to start,
since the pages show everything the store holds to whoever reaches the port.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Annotated

import typer

from scheduler.cli_support import (
    RulesOption,
    SourcesOption,
    StoreOption,
    app,
    configured_sources,
    console,
    fail,
    opened_store,
    refusing_bad_input,
)

TOKEN_ENV = "PRESSWATCH_WEB_TOKEN"  # noqa: S105 -- the variable's name, not a token
DEFAULT_PORT = 8765
MIN_TOKEN_LENGTH = 16


def needs_token(host: str) -> bool:
    """Whether serving on `host` needs a token: anything but this machine's own loopback
    address (``127.0.0.1``, ``::1``, ``localhost``). Another 127.x address is often
    forwarded to or shared (containers, SSH tunnels), and a name may resolve anywhere."""
    from scheduler.web.app import LOOPBACK_HOSTS  # the web stack loads for `web` only

    return host.strip("[]").lower() not in LOOPBACK_HOSTS


def read_token(token_file: Path | None) -> str | None:
    """The token from `token_file` (first line), else from ``PRESSWATCH_WEB_TOKEN``; exit 2
    for an unreadable file or a token too short to resist guessing."""
    if token_file is not None:
        try:
            token = token_file.read_text("utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            fail(f"--token-file {token_file}: cannot read it ({exc})")
        origin = f"--token-file {token_file}"
    else:
        token = os.environ.get(TOKEN_ENV, "").strip()
        origin = TOKEN_ENV
    if not token:
        return None
    if len(token) < MIN_TOKEN_LENGTH:
        fail(
            f"{origin}: the token has {len(token)} characters; use at least"
            f" {MIN_TOKEN_LENGTH}, e.g. from"
            " python3 -c 'import secrets; print(secrets.token_urlsafe())'"
        )
    return token


@app.command()
def web(
    host: Annotated[
        str, typer.Option(help="address to listen on; not loopback only with a token")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="0 picks a free port")] = DEFAULT_PORT,
    store: StoreOption = None,
    sources_file: SourcesOption = None,
    rules_file: RulesOption = None,
    token_file: Annotated[
        Path | None,
        typer.Option(
            "--token-file",
            help=f"file holding the token pages ask for (default: ${TOKEN_ENV})",
            show_default=False,
        ),
    ] = None,
    allowed_hosts: Annotated[
        list[str] | None,
        typer.Option(
            "--allowed-host",
            help="another Host name the pages answer to (e.g. the name a proxy forwards)",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Serve the review dashboard: stories with their timelines of copies, sources with
    their health, alerts with their deliveries, item search and exports. Read-only.

    With a token, every page asks for it as the password (HTTP basic auth, any user name).
    """
    import uvicorn

    from scheduler.rules import load_rules
    from scheduler.web import create_app
    from scheduler.web.app import LOOPBACK_HOSTS

    token = read_token(token_file)
    if token is None and needs_token(host):
        fail(
            f"refusing to serve the dashboard on {host} without a token: anyone who reaches"
            f" it could read the store; set {TOKEN_ENV} or pass --token-file, or serve on"
            " 127.0.0.1 (the default)"
        )
    sources = configured_sources(sources_file)
    with refusing_bad_input():
        rules = load_rules(rules_file, resolve_secrets=False)
    hosts = list(dict.fromkeys([*LOOPBACK_HOSTS, host.strip("[]"), *(allowed_hosts or [])]))
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with opened_store(store) as st:
        # Word searches need the store's word index to hold every item: SQLite's catches
        # up with the items written since, and a Redis store written by an older
        # Presswatch gains its index here, once (a few minutes for 100,000 items).
        indexed = st.index_words(
            starting=lambda count: console.print(
                f"Indexing the words of {count} items for searches; the dashboard starts"
                " when it is done",
                highlight=False,
            )
        )
        if indexed:
            console.print(f"Indexed the words of {indexed} items for searches", highlight=False)
        listener = socket.socket(family, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            listener.bind((host.strip("[]"), port))
            listener.listen(128)  # connections wait from the moment the URL is printed
        except OSError as exc:
            listener.close()
            fail(f"cannot listen on {host}:{port}: {exc.strerror} (choose another --port)")
        bound = listener.getsockname()[1]
        shown = f"[{host.strip('[]')}]" if family == socket.AF_INET6 else host
        console.print(
            f"Presswatch web on http://{shown}:{bound}/ reading {st.url}"
            + (" (token required)" if token else "")
            + "; Ctrl-C stops it",
            highlight=False,
            soft_wrap=True,
        )
        application = create_app(st, token=token, allowed_hosts=hosts, sources=sources, rules=rules)
        config = uvicorn.Config(
            application,
            log_level="warning",
            server_header=False,  # no version shown to anyone
            proxy_headers=False,  # the client address is the peer's, for the try limit
        )
        uvicorn.Server(config).run(sockets=[listener])
