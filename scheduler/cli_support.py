"""What every `presswatch` command shares: the app, consoles, common options, clear failure."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from crawler.config import ConfigError, Source, load_sources
from crawler.telemetry import flush, init_sentry

if TYPE_CHECKING:
    from pipelines.store import Store

app = typer.Typer(
    help="Presswatch: watch government press and the portals that republish it.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def report_to_sentry(ctx: typer.Context) -> None:
    """Every command reports its errors to Sentry when SENTRY_DSN is set, and refuses a
    bad PRESSWATCH_TZ before it starts."""
    from scheduler.display import display_zone

    try:
        display_zone()
    except ValueError as exc:
        fail(str(exc))
    if init_sentry("cli", secrets=[os.environ.get("PRESSWATCH_STORE", "")]):
        ctx.call_on_close(flush)


console = Console()
errors = Console(stderr=True)

StoreOption = Annotated[
    str | None,
    typer.Option(
        "--store",
        envvar="PRESSWATCH_STORE",
        help="sqlite:///path.db (default sqlite:///presswatch.db) or redis://host:port/db",
        show_default=False,
    ),
]
SourcesOption = Annotated[
    Path | None,
    typer.Option(
        "--sources",
        envvar="PRESSWATCH_SOURCES",
        help="sources.yaml to use instead of the bundled one",
        show_default=False,
    ),
]
RulesOption = Annotated[
    Path | None,
    typer.Option(
        "--rules",
        envvar="PRESSWATCH_RULES",
        help="rules.yaml to alert with instead of the bundled scheduler/rules.yaml",
        show_default=False,
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="print JSON instead of a table")]
SettingOption = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        metavar="NAME=VALUE",
        help="a Scrapy setting for the crawls (VALUE may be JSON), e.g. --set DOWNLOAD_DELAY=2",
        show_default=False,
    ),
]
AllowNetOption = Annotated[
    list[str] | None,
    typer.Option(
        "--allow-net",
        metavar="CIDR",
        envvar="PRESSWATCH_ALLOW_NETS",
        help="let crawls fetch from these private or loopback networks (refused by default),"
        " e.g. --allow-net 127.0.0.0/8 for portals on this machine",
        show_default=False,
    ),
]


def crawl_settings_from(settings: list[str] | None, allow_nets: list[str] | None) -> dict[str, Any]:
    """The Scrapy settings that ``--set`` and ``--allow-net`` ask for; exit 2 if malformed."""
    from argparse import ArgumentTypeError

    from crawler.egress import EgressPolicy
    from crawler.run import setting_argument

    chosen: dict[str, Any] = {}
    for text in settings or []:
        try:
            name, value = setting_argument(text)
        except ArgumentTypeError as exc:
            fail(f"--set {exc}")
        chosen[name] = value
    if allow_nets:
        nets = [net for text in allow_nets for net in text.replace(",", " ").split()]
        try:
            EgressPolicy.from_cidrs(nets)
        except ValueError as exc:
            fail(f"--allow-net: {exc}")
        chosen["EGRESS_ALLOW_NETS"] = nets
    return chosen


def fail(message: str, code: int = 2, *, label: str = "error") -> NoReturn:
    """Say what is wrong in one unwrapped line (paths stay greppable) and exit."""
    errors.print(f"[red]{label}:[/red] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


@contextmanager
def refusing_bad_input() -> Iterator[None]:
    """Turn configuration and store errors into one clear message and exit code 2."""
    from pipelines.store.base import StoreError

    try:
        yield
    except (ConfigError, StoreError, ValueError) as exc:
        fail(str(exc))


@contextmanager
def opened_store(url: str | None, *, create: bool = False) -> Iterator[Store]:
    """The store for a command; only a command that writes passes `create` (see
    `open_store`), so reading from a mistyped path says so instead of making a file."""
    from pipelines.store import open_store

    with refusing_bad_input():
        store = open_store(url, create=create)
    try:
        yield store
    finally:
        store.close()


def configured_sources(path: Path | None) -> list[Source]:
    with refusing_bad_input():
        return load_sources(path)
