"""What every `presswatch` command shares: the app, consoles, common options, clear failure."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

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
def opened_store(url: str | None) -> Iterator[Store]:
    from pipelines.store import open_store

    with refusing_bad_input():
        store = open_store(url)
    try:
        yield store
    finally:
        store.close()


def configured_sources(path: Path | None) -> list[Source]:
    with refusing_bad_input():
        return load_sources(path)
