"""Keyword rules as data: `rules.yaml` validated into typed `Rule` objects, errors file:line."""

from __future__ import annotations

import os
import re
import unicodedata
import warnings
from functools import cache
from pathlib import Path
from typing import Literal

import yaml
from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from crawler.config import ConfigError, Strict, load_yaml_model
from crawler.yamlfile import read_yaml

BUNDLED_RULES = Path(__file__).with_name("rules.yaml")
NAME = r"^[a-z0-9][a-z0-9_.-]*$"
ENV_REFERENCE = re.compile(r"\$\{([^}]*)\}")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
URL_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
# Delivered by our own apprise plugin (registered by the notifier), not by apprise itself.
OWN_SCHEMES = frozenset({"console"})


@cache
def _apprise_schemes() -> frozenset[str]:
    # Imported here: loading every apprise plugin costs a few hundred ms that only a
    # rules file with channels needs to pay.
    from apprise import NotificationManager

    with warnings.catch_warnings():
        # apprise 2.3's PGP plugin imports the stdlib `imghdr`, deprecated since 3.11: not
        # ours to fix, and fatal under the test suite's filterwarnings = error.
        warnings.filterwarnings("ignore", category=DeprecationWarning, message=".*imghdr")
        return frozenset(NotificationManager().schemas())


class Near(Strict):
    """Context a match needs: one of `terms` within `window` words of it."""

    terms: list[str] = Field(min_length=1)
    window: int = Field(default=15, ge=1, le=500, description="distance in words, either side")


class Rule(Strict):
    """What a person watches; see the matcher for how terms, exclude and near are read."""

    name: str = Field(pattern=NAME)
    terms: list[str] = Field(min_length=1)
    exclude: list[str] = Field(default_factory=list)  # phrases that veto a match they contain
    near: Near | None = None
    sources: list[str] = Field(default_factory=list)  # empty: every source
    languages: list[Literal["ru", "kk", "en"]] = Field(default_factory=list)  # empty: all
    channels: list[str] = Field(min_length=1)
    mode: Literal["immediate", "hourly", "daily"] = "immediate"  # hourly, daily: digests

    @field_validator("terms", "exclude")
    @classmethod
    def _has_words(cls, value: list[str]) -> list[str]:
        for phrase in value:
            if not re.search(r"\w", phrase):
                raise ValueError(f"{phrase!r} has no letters or digits to match")
            # Pasted from a web page, a term can carry zero-width characters or soft hyphens:
            # the matcher would drop them, but they are never meant and hide in the file.
            invisible = [c for c in phrase if unicodedata.category(c) == "Cf"]
            if invisible:
                codes = ", ".join(f"U+{ord(c):04X}" for c in invisible)
                raise ValueError(f"{phrase!r} contains invisible characters ({codes})")
        return value

    @property
    def is_digest(self) -> bool:
        return self.mode != "immediate"

    def applies_to(self, *, source: str | None = None, lang: str | None = None) -> bool:
        """False when the item is out of this rule's scope; an unknown source or language
        (None) is never out of scope, so dry runs over bare text still match."""
        if source is not None and self.sources and source not in self.sources:
            return False
        return not (lang is not None and self.languages and lang not in self.languages)


def _check_channel_url(name: str, url: str) -> None:
    """Refuse a URL apprise cannot deliver to; the message names the scheme only, never the
    URL, because a channel URL can carry a token or a password."""
    scheme = URL_SCHEME.match(url)
    if scheme is None:
        raise ValueError(
            f"channel {name!r} is not a notification URL (expected SCHEME://..., "
            "e.g. mailto://, json://, tgram://)"
        )
    found = scheme.group(1).lower()
    if found not in OWN_SCHEMES and found not in _apprise_schemes():
        raise ValueError(f"channel {name!r}: unknown notification scheme {found!r}")
    for reference in ENV_REFERENCE.findall(url):
        if not ENV_NAME.match(reference):
            # Not echoed: a token pasted inside ${...} by mistake is still a token.
            raise ValueError(
                f"channel {name!r}: a ${{...}} reference is not an environment name "
                "(letters, digits and _)"
            )


class Health(Strict):
    """Where source-health notices go (``health: {channels: [...]}``)."""

    channels: list[str] = Field(min_length=1)


class RulesFile(Strict):
    """A rules file: named channels (apprise URLs, kept secret), the rules that use them, and
    where source-health notices go (`health_channels`)."""

    # Declared before `rules` and `health` so that their validators see the channels.
    channels: dict[str, SecretStr] = Field(default_factory=dict)
    rules: list[Rule] = Field(min_length=1)
    health: Health | None = None

    @field_validator("channels")
    @classmethod
    def _channel_urls(cls, value: dict[str, SecretStr]) -> dict[str, SecretStr]:
        errors = []
        for name, url in value.items():
            try:
                if not re.match(NAME, name):
                    raise ValueError(f"channel name {name!r} should match {NAME}")
                _check_channel_url(name, url.get_secret_value())
            except ValueError as exc:
                errors.append(_error((name,), str(exc)))
        if errors:
            raise ValidationError.from_exception_data("channels", errors)
        return value

    @field_validator("rules")
    @classmethod
    def _rules_are_consistent(cls, value: list[Rule], info: ValidationInfo) -> list[Rule]:
        errors = []
        known = info.data.get("channels")
        if known is None:  # the channels failed validation and are reported already
            return value
        seen: set[str] = set()
        for index, rule in enumerate(value):
            if rule.name in seen:
                errors.append(_error((index, "name"), f"rule name {rule.name!r} is used twice"))
            seen.add(rule.name)
            for position, channel in enumerate(rule.channels):
                if channel not in known:
                    defined = ", ".join(sorted(known)) or "none"
                    errors.append(
                        _error(
                            (index, "channels", position),
                            f"no channel named {channel!r} under channels: (defined: {defined})",
                        )
                    )
        if errors:
            raise ValidationError.from_exception_data("rules", errors)
        return value

    @field_validator("health")
    @classmethod
    def _health_channels_exist(cls, value: Health | None, info: ValidationInfo) -> Health | None:
        known = info.data.get("channels")
        if value is None or known is None:
            return value
        errors = [
            _error(
                ("channels", position),
                f"no channel named {channel!r} under channels: (defined: "
                f"{', '.join(sorted(known)) or 'none'})",
            )
            for position, channel in enumerate(value.channels)
            if channel not in known
        ]
        if errors:
            raise ValidationError.from_exception_data("health", errors)
        return value

    @property
    def health_channels(self) -> list[str]:
        """The channels for source-health notices: those under ``health:``, else the
        console channel (``console://``) when one is defined, else none."""
        if self.health is not None:
            return list(self.health.channels)
        return [
            name
            for name, url in self.channels.items()
            if url.get_secret_value().lower().startswith("console://")
        ][:1]

    def rule(self, name: str) -> Rule:
        for rule in self.rules:
            if rule.name == name:
                return rule
        known = ", ".join(r.name for r in self.rules)
        raise ConfigError(f"no rule named {name!r}; known rules: {known}")


def _error(loc: tuple[str | int, ...], message: str) -> InitErrorDetails:
    # `{message}` is a template field, so braces inside the message survive formatting.
    error = PydanticCustomError("rules", "{message}", {"message": message})
    return InitErrorDetails(type=error, loc=loc, input=None)


def _channel_line(path: Path, name: str) -> int:
    root, _ = read_yaml(path)  # read and checked once already, by load_yaml_model
    if isinstance(root, yaml.MappingNode):
        for key, value in root.value:
            if key.value == "channels" and isinstance(value, yaml.MappingNode):
                for channel, url in value.value:
                    if channel.value == name:
                        return url.start_mark.line + 1
    return 1


def _resolve_env(path: Path, rules: RulesFile) -> RulesFile:
    """Channel URLs with ``${VAR}`` replaced from the environment; a missing variable is
    refused with file:line and the variable's name (never the URL)."""
    resolved: dict[str, SecretStr] = {}
    for name, url in rules.channels.items():
        template = url.get_secret_value()
        missing = [var for var in ENV_REFERENCE.findall(template) if var not in os.environ]
        if missing:
            line = _channel_line(path, name)
            raise ConfigError(
                f"{path}:{line}: channels.{name}: environment variable {missing[0]} is not "
                "set (channel URLs read secrets from the environment)"
            )
        value = ENV_REFERENCE.sub(lambda m: os.environ[m.group(1)], template)
        resolved[name] = SecretStr(value)
    return rules.model_copy(update={"channels": resolved})


def load_rules(path: str | Path | None = None, *, resolve_secrets: bool = True) -> RulesFile:
    """The rules of `path`, or of the bundled default file when `path` is None.

    With `resolve_secrets` (the default) every ``${VAR}`` in a channel URL is read from the
    environment now, so a missing secret stops the start, not the first alert. Dry runs that
    never deliver (``presswatch match``) pass False and keep the templates.
    """
    source = Path(path) if path else BUNDLED_RULES
    rules = load_yaml_model(source, RulesFile)
    return _resolve_env(source, rules) if resolve_secrets else rules
