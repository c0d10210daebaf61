"""Saved items read from a JSON-lines file for the offline commands (`match`, `link`).

Each line must be a JSON object whose fields the matcher and the linker read have the right
types; anything else stops the read with ``FILE:LINE: what is wrong`` (an `ItemFileError`).
Lines and files are bounded, so a stray binary or a runaway file is refused, not loaded.
"""

from __future__ import annotations

import json
import os
import reprlib
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator

from pipelines.store.keys import parse_instant

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

# One item: an article from a page of at most DOWNLOAD_MAXSIZE (10 MiB) keeps far less text;
# 16 MiB leaves room for JSON escapes and still stops a line that never ends.
MAX_LINE_BYTES = 16 * 1024 * 1024
# `link` holds every item in memory: 256 MiB is some 50,000 long articles.
MAX_FILE_BYTES = 256 * 1024 * 1024
JSON_KINDS = {
    list: "an array",
    str: "a string",
    int: "a number",
    float: "a number",
    bool: "true or false",
    type(None): "null",
}


class ItemFileError(ValueError):
    """A JSON-lines file of items was refused; the message names the file and line."""


class SavedItem(BaseModel):
    """The fields of an item that `match` and `link` read (an export line has more: kept)."""

    model_config = ConfigDict(extra="allow", strict=True)

    id: str | None = None
    url: str | None = None
    source: str | None = None
    lang: str | None = None
    title: str | None = None
    lead: str | None = None
    text: str | None = None
    published_at: str | None = None
    links: list[str] | None = None

    @field_validator("published_at")
    @classmethod
    def _iso_time(cls, value: str | None) -> str | None:
        if value:
            parse_instant(value)
        return value

    @model_validator(mode="after")
    def _identified(self) -> SavedItem:
        if not (self.id or self.url):
            raise ValueError("an item needs an id or a url")
        return self


def _problem(exc: ValidationError) -> str:
    error = exc.errors()[0]
    field = ".".join(str(k) for k in error["loc"])
    reason = error["msg"].removeprefix("Value error, ")
    if error["type"] != "value_error":  # a wrong type: show what was there
        reason += f", not {reprlib.repr(error['input'])}"
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return f"{field}: {reason}{more}" if field else f"{reason}{more}"


def _check_size(path: Path, size: int, limit: int | None) -> None:
    if limit is not None and size > limit:
        msg = (
            f"{path}: {size:,} bytes or more, over the {limit:,}-byte limit of a file of "
            "items; split it (e.g. `split -l 10000`)"
        )
        raise ItemFileError(msg)


def read_items(path: Path, *, max_file_bytes: int | None = None) -> Iterator[dict[str, Any]]:
    """The items of `path` as dicts, one a non-blank line, each checked by `SavedItem`.

    `max_file_bytes` bounds the whole file (a caller that keeps every item passes
    `MAX_FILE_BYTES`); every line is bounded by `MAX_LINE_BYTES`. Raises `ItemFileError`.
    """
    try:
        stream = path.open("rb")
    except OSError as exc:
        raise ItemFileError(f"{path}: cannot read: {exc.strerror}") from None
    with stream:
        # A regular file is judged by its size at once; a pipe as it is read.
        _check_size(path, os.fstat(stream.fileno()).st_size, max_file_bytes)
        read = 0
        number = 0
        while raw := stream.readline(MAX_LINE_BYTES + 1):
            number += 1
            read += len(raw)
            _check_size(path, read, max_file_bytes)
            if len(raw) > MAX_LINE_BYTES:
                msg = f"{path}:{number}: a line over {MAX_LINE_BYTES:,} bytes; one item a line"
                raise ItemFileError(msg)
            if raw.strip():
                yield _item(path, number, raw)


def _item(path: Path, number: int, raw: bytes) -> dict[str, Any]:
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        msg = f"{path}:{number}: not UTF-8 (byte 0x{raw[exc.start]:02x} at column {exc.start + 1})"
        raise ItemFileError(msg) from None
    try:
        value = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ItemFileError(f"{path}:{number}: not JSON: {exc.msg}") from None
    except RecursionError:
        raise ItemFileError(f"{path}:{number}: JSON nested too deep") from None
    if not isinstance(value, dict):
        kind = JSON_KINDS.get(type(value), type(value).__name__)
        msg = f"{path}:{number}: expected a JSON object (an item), got {kind}"
        raise ItemFileError(msg)
    try:
        SavedItem.model_validate(value)
    except ValidationError as exc:
        raise ItemFileError(f"{path}:{number}: {_problem(exc)}") from None
    return value
