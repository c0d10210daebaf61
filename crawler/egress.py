"""Egress policy: fetch only public http(s) addresses, checked on each hop and resolved IP."""

from __future__ import annotations

import ipaddress
import logging
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Self

from scrapy import signals
from scrapy.exceptions import IgnoreRequest, NotConfigured
from scrapy.resolver import CachingThreadedResolver
from scrapy.utils.httpobj import urlparse_cached
from twisted.internet.error import DNSLookupError

from crawler.urls import ALLOWED_SCHEMES

if TYPE_CHECKING:
    from collections.abc import Sequence

    from scrapy.crawler import Crawler
    from scrapy.http import Request
    from scrapy.statscollectors import StatsCollector
    from twisted.internet.base import ReactorBase
    from twisted.internet.defer import Deferred

logger = logging.getLogger(__name__)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class EgressBlockedError(DNSLookupError):
    """A host resolved to an address the egress policy forbids.

    A DNSLookupError subclass because Twisted's endpoint machinery logs any other
    resolver error as a traceback before turning it into "no results".
    """


@dataclass(frozen=True)
class EgressPolicy:
    """Which addresses we may connect to: public unicast, plus the `allow_nets` exceptions."""

    allow_nets: tuple[IPNetwork, ...] = ()

    @classmethod
    def from_cidrs(cls, cidrs: Iterable[str]) -> EgressPolicy:
        try:
            return cls(tuple(ipaddress.ip_network(c, strict=False) for c in cidrs))
        except ValueError as exc:
            message = f"EGRESS_ALLOW_NETS: {exc} (give CIDRs such as '127.0.0.0/8')"
            raise ValueError(message) from None

    def refusal(self, address: IPAddress) -> str | None:
        """Why `address` may not be fetched, or None when it may."""
        mapped = getattr(address, "ipv4_mapped", None)
        if mapped is not None:  # ::ffff:127.0.0.1 is 127.0.0.1
            address = mapped
        if any(address in net for net in self.allow_nets):
            return None
        for kind in ("loopback", "private", "link_local", "multicast", "reserved"):
            if getattr(address, f"is_{kind}"):
                return f"{kind} address {address}"
        if address.is_unspecified or not address.is_global:
            return f"non-public address {address}"
        return None

    def url_refusal(self, scheme: str, host: str) -> str | None:
        """Why a URL may not be fetched, judged before any DNS lookup, or None."""
        if scheme not in ALLOWED_SCHEMES:
            return f"scheme {scheme or '(none)'!r} is not http(s)"
        if not host:
            return "URL has no host"
        literal = ip_literal(host)
        return self.refusal(literal) if literal is not None else None


def ip_literal(host: str) -> IPAddress | None:
    """The address a host string spells without DNS, legacy forms (127.1, 0x7f000001) too."""
    host = host.strip("[]")
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    try:
        # inet_aton reads the shorthand and octal/hex forms that browsers and libc accept.
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except OSError:
        return None


def _policy(crawler: Crawler) -> EgressPolicy:
    try:
        return EgressPolicy.from_cidrs(crawler.settings.getlist("EGRESS_ALLOW_NETS"))
    except ValueError as exc:
        raise NotConfigured(str(exc)) from None


class _Refusals:
    """Counts every refusal and logs each (host, reason) once."""

    def __init__(self, stats: StatsCollector) -> None:
        self.stats = stats
        self.logged: set[tuple[str, str]] = set()

    def record(self, host: str, reason: str) -> None:
        self.stats.inc_value("egress/blocked")
        if (host, reason) not in self.logged:
            self.logged.add((host, reason))
            logger.warning(
                "egress blocked: %s: %s (`presswatch crawl|run --allow-net CIDR`, or the setting"
                " EGRESS_ALLOW_NETS, lets crawls reach a private network)",
                host,
                reason,
            )


class EgressFilteringResolver(CachingThreadedResolver):
    """DNS resolver (``TWISTED_DNS_RESOLVER``) that refuses addresses the policy forbids.

    The address checked is the address connected to, so a redirect to an internal name
    or a DNS rebinding answer is caught too. Settings: ``EGRESS_ENABLED`` (True),
    ``EGRESS_ALLOW_NETS`` ([] — CIDRs allowed despite being private).
    """

    def __init__(
        self,
        reactor: ReactorBase,
        cache_size: int,
        timeout: float,
        policy: EgressPolicy | None = None,
    ) -> None:
        super().__init__(reactor, cache_size, timeout)
        self.policy = policy
        self.blocked: dict[str, str] = {}  # host name -> why, read by EgressMiddleware
        # The resolver belongs to the process, not to a crawler: each crawler's
        # EgressMiddleware subscribes here to count and log refusals in its own stats.
        self.on_blocked: list[Callable[[str, str], None]] = []

    @classmethod
    def from_crawler(cls, crawler: Crawler, reactor: ReactorBase) -> Self:
        resolver = super().from_crawler(crawler, reactor)
        if crawler.settings.getbool("EGRESS_ENABLED", True):
            resolver.policy = _policy(crawler)
        return resolver

    def getHostByName(self, name: str, timeout: Sequence[int] = ()) -> Deferred[str]:
        resolved = super().getHostByName(name, timeout)
        if self.policy is not None:
            resolved.addCallback(self._check, name)
        return resolved

    def _check(self, address: str, name: str) -> str:
        assert self.policy is not None
        reason = self.policy.refusal(ipaddress.ip_address(address))
        if reason is None:
            return address
        why = f"{name} resolves to a {reason}"
        self.blocked[name.lower().rstrip(".")] = why
        for listener in self.on_blocked:
            listener(name, why)
        raise EgressBlockedError(why)


class EgressMiddleware:
    """Downloader middleware that refuses non-http(s) URLs and forbidden IP literals.

    Every request passes here, redirect hops included (RedirectMiddleware sends each hop
    back through the scheduler). Host names the resolver has already refused are refused
    here too, with the reason, instead of being retried. Settings: ``EGRESS_ENABLED``
    (True), ``EGRESS_ALLOW_NETS`` ([]). Stats: ``egress/blocked``.
    """

    def __init__(self, policy: EgressPolicy, refusals: _Refusals) -> None:
        self.policy = policy
        self.refusals = refusals
        self.resolver: EgressFilteringResolver | None = None
        self.resolver_blocked: dict[str, str] = {}

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        if not crawler.settings.getbool("EGRESS_ENABLED", True):
            raise NotConfigured("EGRESS_ENABLED is off")
        assert crawler.stats is not None
        middleware = cls(_policy(crawler), _Refusals(crawler.stats))
        # The resolver is installed on the reactor after the crawler is built.
        crawler.signals.connect(middleware.subscribe, signal=signals.engine_started)
        crawler.signals.connect(middleware.unsubscribe, signal=signals.spider_closed)
        return middleware

    def subscribe(self) -> None:
        """Share the resolver's refusals: count them here and refuse those hosts up front."""
        from twisted.internet import reactor  # imported late: the one Scrapy installed

        resolver = getattr(reactor, "resolver", None)
        if not isinstance(resolver, EgressFilteringResolver):
            logger.warning(
                "TWISTED_DNS_RESOLVER is not crawler.egress.EgressFilteringResolver: "
                "host names are fetched without checking the addresses they resolve to"
            )
            return
        self.resolver = resolver
        self.resolver_blocked = resolver.blocked
        resolver.on_blocked.append(self.refusals.record)

    def unsubscribe(self) -> None:
        """Stop counting the resolver's refusals (another crawl may follow in this process)."""
        if self.resolver is not None and self.refusals.record in self.resolver.on_blocked:
            self.resolver.on_blocked.remove(self.refusals.record)

    def process_request(self, request: Request) -> None:
        parts = urlparse_cached(request)
        host = (parts.hostname or "").lower().rstrip(".")
        reason = self.policy.url_refusal(parts.scheme, host) or self.resolver_blocked.get(host)
        if reason is not None:
            self.refusals.record(host or request.url, reason)
            raise IgnoreRequest(f"egress blocked: {reason}")
