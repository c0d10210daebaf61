"""The directory of organisations texts cite (``organisations.yaml``), loaded once.

Citation resolution (`pipelines.attribution.AliasIndex`) reads the bundled entries and a
sources.yaml's own ``organisations:`` (`crawler.config.Organisation` is the schema of
both); an entry of the user's takes the place of a bundled one with its id or address.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import model_validator

from crawler.config import Organisation, Strict, load_yaml_model, unique_organisations

if TYPE_CHECKING:
    from collections.abc import Iterable

BUNDLED_ORGANISATIONS = Path(__file__).with_name("organisations.yaml")


class OrganisationsFile(Strict):
    organisations: list[Organisation]

    @model_validator(mode="after")
    def _unique(self) -> OrganisationsFile:
        unique_organisations(self.organisations)
        return self


def load_organisations(path: Path) -> list[Organisation]:
    """The entries of a directory file; refused with ``file:line: field: reason``."""
    return load_yaml_model(path, OrganisationsFile).organisations


@lru_cache(maxsize=1)
def bundled_organisations() -> tuple[Organisation, ...]:
    """The bundled directory, read and validated on first use."""
    return tuple(load_organisations(BUNDLED_ORGANISATIONS))


def directory(extra: Iterable[Organisation] = ()) -> list[Organisation]:
    """The bundled entries and `extra` (a user's), the user's replacing a bundled entry
    with the same id or address."""
    extra = list(extra)
    taken = {o.id for o in extra} | {o.address for o in extra}
    kept = [o for o in bundled_organisations() if o.id not in taken and o.address not in taken]
    return [*kept, *extra]
