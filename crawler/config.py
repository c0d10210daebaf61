"""Sources as data: `sources.yaml` validated into typed `Source` objects, errors with file:line."""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from yaml.reader import ReaderError

from crawler.patterns import compile_pattern
from crawler.urls import fetchable_url
from crawler.yamlfile import YamlFileError, read_yaml

M = TypeVar("M", bound=BaseModel)
BUNDLED_SOURCES = Path(__file__).with_name("sources.yaml")
DURATION = re.compile(r"^\s*(\d+)\s*([smhd])\s*$")
DURATION_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
# A URL the crawler fetches: absolute http(s) with a host, refused at load otherwise.
FetchableUrl = Annotated[str, AfterValidator(fetchable_url)]


def _site(value: str) -> str:
    """A host name, or a host and a path prefix when several sources share a host
    (``gov.kz/memleket/entities/minfin``); never a URL."""
    if "://" in value or value.startswith("/") or not value.strip():
        raise ValueError(f"{value!r}: give a host name (or host/path on a shared host), not a URL")
    return value.strip().lower().rstrip("/")


class ConfigError(ValueError):
    """A configuration file was refused; the message names file, line, field and reason."""


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LoadMore(Strict):
    """A listing that shows more links on a click or a scroll (browser sources only).

    Each round clicks `click` (when given and visible) and/or scrolls to the bottom, then
    waits up to `wait` seconds for more article links; it stops at `until_links` links,
    after `max_rounds` rounds, or when a round adds none.
    """

    click: str | None = Field(default=None, description='CSS selector of the "load more" button')
    scroll: bool = False
    until_links: int = Field(default=100, ge=1, le=10_000)
    max_rounds: int = Field(default=10, ge=1, le=100)
    wait: float = Field(default=3.0, gt=0, le=30)

    @model_validator(mode="after")
    def _clicks_or_scrolls(self) -> LoadMore:
        if not self.click and not self.scroll:
            raise ValueError("give click (a button's CSS selector) or scroll: true, or both")
        return self


class Listing(Strict):
    """A listing page: article links matching `link_pattern`, following `next` pages."""

    url: FetchableUrl
    # Python re syntax, run on RE2 in linear time (crawler/patterns.py)
    link_pattern: str = Field(description="regular expression an article URL must match")
    next_pattern: str | None = Field(
        default=None, description="regular expression of the next listing page's URL"
    )
    pages: int = Field(default=1, ge=1, le=50, description="how many listing pages to follow")
    # browser sources only: what marks this listing as ready (default: the source's wait_for)
    wait_for: str | None = None
    load_more: LoadMore | None = None  # browser sources only: click or scroll for more links

    @field_validator("link_pattern", "next_pattern")
    @classmethod
    def _runs_on_re2(cls, value: str | None) -> str | None:
        if value is not None:
            compile_pattern(value)  # PatternError is a ValueError: refused with file:line
        return value


class JsonApi(Strict):
    """A JSON endpoint behind a script-filled listing, polled directly (no browser needed).

    ``crawler/browser.py`` says how to find one. `url` may hold ``{page}``, replaced by
    1 .. `pages`.
    """

    url: FetchableUrl
    headers: dict[str, str] = Field(default_factory=dict)  # what the endpoint insists on
    items_path: str = Field(
        default="", description="dotted path to the list of items (data.items); '' the top"
    )
    url_field: str = Field(default="url", description="dotted path of an item's link")
    date_field: str | None = None  # dotted path of an item's date (ISO 8601 or Unix time)
    pages: int = Field(default=1, ge=1, le=50)

    @model_validator(mode="after")
    def _pages_have_a_placeholder(self) -> JsonApi:
        if self.pages > 1 and "{page}" not in self.url:
            raise ValueError("pages > 1 needs {page} in url, where the page number goes")
        return self


class Discovery(Strict):
    feeds: list[FetchableUrl] = Field(default_factory=list)  # RSS, Atom
    sitemaps: list[FetchableUrl] = Field(
        default_factory=list
    )  # sitemap, sitemap index, news sitemap
    listings: list[Listing] = Field(default_factory=list)
    json_api: list[JsonApi] = Field(default_factory=list)

    @model_validator(mode="after")
    def _has_a_way_in(self) -> Discovery:
        if not (self.feeds or self.sitemaps or self.listings or self.json_api):
            raise ValueError("give at least one of feeds, sitemaps or listings (or json_api)")
        return self


class Selectors(Strict):
    """CSS selectors that override what the generic parser finds, field by field."""

    title: str | None = None
    text: str | None = None
    lead: str | None = None
    published_at: str | None = None
    authors: str | None = None


class Source(Strict):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$")
    title: str = ""
    kind: Literal["official", "agency", "media"]
    domains: list[str] = Field(min_length=1)
    languages: list[Literal["ru", "kk", "en"]] = Field(default_factory=lambda: ["ru"])
    timezone: str = "Asia/Almaty"
    aliases: list[str] = Field(default_factory=list)
    discovery: Discovery
    render: Literal["http", "browser"] = "http"
    # browser: CSS selectors that mark a listing page / an article page as rendered
    wait_for: str | None = None
    article_wait_for: str | None = None
    poll: str = "15m"
    selectors: Selectors = Field(default_factory=Selectors)
    encoding: str | None = None  # force a charset when the site declares a wrong one
    max_items: int = Field(default=200, ge=1, le=100_000)  # articles fetched per run
    verified: bool = False  # patterns confirmed against the live site
    enabled: bool = True

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (use an IANA name)") from None
        return value

    @field_validator("poll")
    @classmethod
    def _duration(cls, value: str) -> str:
        if not DURATION.match(value):
            raise ValueError(f"{value!r} is not a duration like 30s, 15m, 2h or 1d")
        return value

    @field_validator("domains")
    @classmethod
    def _bare_domains(cls, value: list[str]) -> list[str]:
        return [_site(domain) for domain in value]

    @model_validator(mode="after")
    def _browser_options_need_a_browser(self) -> Source:
        if self.render == "browser":
            return self
        if self.wait_for or self.article_wait_for:
            raise ValueError("wait_for and article_wait_for need render: browser")
        for listing in self.discovery.listings:
            if listing.wait_for or listing.load_more:
                raise ValueError("a listing's wait_for and load_more need render: browser")
        return self

    @property
    def poll_seconds(self) -> int:
        match = DURATION.match(self.poll)
        assert match  # validated above
        return int(match.group(1)) * DURATION_SECONDS[match.group(2)]

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def hosts(self) -> list[str]:
        """The host names of `domains` (a ``gov.kz/memleket/entities/minfin`` is gov.kz)."""
        return list(dict.fromkeys(domain.split("/", 1)[0] for domain in self.domains))

    def owns(self, host: str) -> bool:
        """True when `host` is one of the source's hosts or a subdomain of one."""
        host = host.lower().rstrip(".")
        return any(host == d or host.endswith("." + d) for d in self.hosts)


class OrganisationNames(Strict):
    """An organisation's names as written in each language (any of them may be missing)."""

    ru: str | None = None
    kk: str | None = None
    en: str | None = None

    @model_validator(mode="after")
    def _at_least_one(self) -> OrganisationNames:
        if not (self.ru or self.kk or self.en):
            raise ValueError("give at least one of ru, kk, en")
        return self


class Organisation(Strict):
    """A body that texts cite: a government body, an agency or outlet, an international one.

    The bundled directory (``pipelines/organisations.yaml``) holds a few hundred; a
    sources.yaml may add more under ``organisations:``. Citations name them by `names`,
    `abbreviations` and `aliases` in any case and inflection (the matcher folds words), and
    stories report them by `address`: the `domain`, or for a body with no site of its own
    the gov.kz entity path (``gov_kz_path: memleket/entities/qriim`` is
    ``gov.kz/memleket/entities/qriim``). `former_domains` are domains the body published on
    before (``sputniknews.kz`` of Sputnik Kazakhstan, now ``sputnik.kz``): links and names
    on them resolve to the body, which is still reported by its `address`. `group` marks
    the bodies a generic reference can mean ("пресс-служба акимата" is the akimat the text
    names); `places` are the place names that tell such a body from the others of its
    group.
    """

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$")
    kind: Literal["official", "agency", "media", "international"]
    names: OrganisationNames
    abbreviations: list[str] = Field(default_factory=list)
    aliases: list[str] = Field(default_factory=list)
    domain: str | None = None
    former_domains: list[str] = Field(default_factory=list)
    gov_kz_path: str | None = Field(default=None, pattern=r"^memleket/entities/[a-z0-9_-]+$")
    group: Literal["akimat", "court", "prosecutor", "ministry"] | None = None
    places: list[str] = Field(default_factory=list)

    @field_validator("domain")
    @classmethod
    def _bare_domain(cls, value: str | None) -> str | None:
        return _site(value) if value is not None else None

    @field_validator("former_domains")
    @classmethod
    def _bare_former_domains(cls, value: list[str]) -> list[str]:
        return [_site(domain) for domain in value]

    @model_validator(mode="after")
    def _one_address(self) -> Organisation:
        if (self.domain is None) == (self.gov_kz_path is None):
            raise ValueError("give either domain or gov_kz_path (for a body on gov.kz), not both")
        return self

    @property
    def address(self) -> str:
        """Where the body publishes: its domain, or ``gov.kz/`` and its entity path."""
        return self.domain or f"gov.kz/{self.gov_kz_path}"

    @property
    def title(self) -> str:
        return self.names.en or self.names.ru or self.names.kk or self.id

    def cited_names(self) -> list[str]:
        """Every name a text may cite the body by."""
        names = (self.names.ru, self.names.kk, self.names.en)
        return [n for n in (*names, *self.abbreviations, *self.aliases) if n]


def unique_organisations(organisations: Iterable[Organisation]) -> None:
    """Refuse two entries with one id or one address, former domains included (which of
    them would a citation mean?)."""
    ids: set[str] = set()
    addresses: set[str] = set()
    for organisation in organisations:
        if organisation.id in ids:
            message = f"organisation id {organisation.id!r} is used twice"
            raise ValueError(message)
        for address in (organisation.address, *organisation.former_domains):
            if address in addresses:
                message = (
                    f"organisation {organisation.id!r}: address {address!r} is another "
                    "entry's; merge their names into one entry"
                )
                raise ValueError(message)
            addresses.add(address)
        ids.add(organisation.id)


class SourcesFile(Strict):
    sources: list[Source]
    organisations: list[Organisation] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_names(self) -> SourcesFile:
        seen: set[str] = set()
        for source in self.sources:
            if source.name in seen:
                raise ValueError(f"source name {source.name!r} is used twice")
            seen.add(source.name)
        unique_organisations(self.organisations)
        return self


def _node_at(node: yaml.Node | None, loc: Iterable[Any]) -> yaml.Node | None:
    """Follow a pydantic error location through the YAML node tree, as deep as it goes."""
    for key in loc:
        if isinstance(node, yaml.MappingNode):
            found = next((v for k, v in node.value if k.value == key), None)
            if found is None:  # a missing field: point at the mapping that lacks it
                return node
            node = found
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int):
            if key >= len(node.value):
                return node
            node = node.value[key]
        else:
            return node
    return node


def _field_path(loc: Iterable[Any]) -> str:
    path = ""
    for key in loc:
        path += f"[{key}]" if isinstance(key, int) else (f".{key}" if path else str(key))
    return path


def load_yaml_model(path: Path, model: type[M]) -> M:
    """Read `path` into `model`; refuse it with ``file:line: field: reason`` on any error.

    The file is read by `crawler.yamlfile.read_yaml`: at most 1 MiB of UTF-8, bounded
    nesting and alias expansion, no duplicate keys.
    """
    try:
        root, data = read_yaml(path)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    except YamlFileError as exc:
        raise ConfigError(str(exc)) from None
    except ReaderError as exc:
        # A control character, e.g. in a binary file: the reader gives a position, no mark.
        line = path.read_text(encoding="utf-8")[: exc.position].count("\n") + 1
        code = ord(exc.character) if isinstance(exc.character, str) else exc.character
        msg = f"{path}:{line}: not valid YAML: the control character U+{code:04X} is not allowed"
        raise ConfigError(msg) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise ConfigError(f"{where}: not valid YAML: {getattr(exc, 'problem', exc)}") from None
    try:
        return model.model_validate(data if data is not None else {})
    except ValidationError as exc:
        lines = []
        for error in exc.errors():
            loc = [k for k in error["loc"] if not (isinstance(k, str) and k.startswith("function"))]
            node = _node_at(root, loc)
            line = node.start_mark.line + 1 if node is not None else 1
            field = _field_path(loc) or "(top level)"
            reason = error["msg"].removeprefix("Value error, ")
            lines.append(f"{path}:{line}: {field}: {reason}")
        raise ConfigError("\n".join(lines)) from None


def load_sources_file(path: str | Path | None = None) -> SourcesFile:
    """The sources and organisations of `path`, or of the bundled file when `path` is None."""
    return load_yaml_model(Path(path) if path else BUNDLED_SOURCES, SourcesFile)


def load_sources(path: str | Path | None = None) -> list[Source]:
    """The sources of `path`, or of the bundled default file when `path` is None."""
    return load_sources_file(path).sources


def find_source(sources: Iterable[Source], name: str) -> Source:
    for source in sources:
        if source.name == name:
            return source
    known = ", ".join(s.name for s in sources)
    raise ConfigError(f"no source named {name!r}; known sources: {known}")
