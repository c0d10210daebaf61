"""Real Scrapy crawls (one subprocess each) against the fault server: every fault ends well."""

from __future__ import annotations

import ipaddress
import json
import os
import random
import ssl
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import trustme

from crawler.egress import EgressPolicy, ip_literal
from crawler.retry import backoff_delay, parse_retry_after
from crawler.robots import robots_verdict, truncate_robots
from tests.fixtures.faults import FaultServer

REPO = Path(__file__).resolve().parents[1]

# A crawl of a tiny probe spider with the project's settings plus `settings`; writes
# stats, items and request failures as JSON. The project's spiders and pipelines are
# left out: this tests the fetch layer alone.
RUNNER = r"""
import json, sys
from scrapy import Request, Spider, signals
from scrapy.crawler import CrawlerProcess
from scrapy.settings import Settings
from w3lib.encoding import http_content_type_encoding
from crawler.encoding import decode_html

args = json.loads(sys.argv[1])
items, failures = [], []

def scraped(item, **kwargs):
    items.append(item)

class Probe(Spider):
    name = "probe"

    async def start(self):
        for url in args["urls"]:
            yield Request(url, callback=self.parse, errback=self.failed)

    def parse(self, response):
        content_type = response.headers.get(b"Content-Type", b"").decode("latin-1")
        decoded = decode_html(response.body, http_content_type_encoding(content_type))
        yield {"url": response.url, "text": decoded.text, "flags": decoded.flags,
               "encoding": decoded.encoding, "size": len(response.body)}
        for href in response.css("a::attr(href)").getall():
            yield response.follow(href, self.parse, errback=self.failed)

    def failed(self, failure):
        failures.append({"url": failure.request.url, "error": type(failure.value).__name__,
                         "message": str(failure.value)})

settings = Settings()
settings.setmodule("crawler.settings", priority="project")
settings.update(args["settings"], priority="cmdline")
process = CrawlerProcess(settings)
crawler = process.create_crawler(Probe)
crawler.signals.connect(scraped, signal=signals.item_scraped)
process.crawl(crawler)
process.start()
with open(args["out"], "w") as out:
    json.dump({"stats": crawler.stats.get_stats(), "items": items, "failures": failures},
              out, default=str)
"""

FAST = {
    "SPIDER_MODULES": [],
    "ITEM_PIPELINES": {},
    "INCREMENTAL_ENABLED": False,
    "STORE_ENABLED": False,
    "DOWNLOAD_TIMEOUT": 1,
    "RETRY_TIMES": 2,
    "RETRY_BACKOFF_BASE": 0.05,
    "RETRY_BACKOFF_MAX": 0.2,
    "RETRY_AFTER_MAX": 5,
    "AUTOTHROTTLE_ENABLED": False,
    "DOWNLOAD_DELAY": 0,
    "CONCURRENT_REQUESTS_PER_DOMAIN": 8,
    "EGRESS_ALLOW_NETS": ["127.0.0.0/8"],
    "CLOSESPIDER_TIMEOUT": 60,
    "LOG_LEVEL": "DEBUG",
}


# One request in flight per host, so the server's log order is the order of our requests.
# Scrapy 2.19 under asyncio enforces the per-host limit only with a non-zero delay: with
# DOWNLOAD_DELAY 0 the slot hands out its whole queue before any download task starts.
ONE_AT_A_TIME = {"CONCURRENT_REQUESTS_PER_DOMAIN": 1, "DOWNLOAD_DELAY": 0.01}


class Crawl:
    """What a finished crawl left: stats, items, failures and its log text."""

    def __init__(self, data: dict[str, Any], log: str) -> None:
        self.stats: dict[str, Any] = data["stats"]
        self.items: list[dict[str, Any]] = data["items"]
        self.failures: list[dict[str, Any]] = data["failures"]
        self.log = log

    def item(self, path: str) -> dict[str, Any] | None:
        return next((i for i in self.items if i["url"].endswith(path)), None)

    def failure(self, path: str) -> dict[str, Any]:
        return next(f for f in self.failures if f["url"].endswith(path))


def crawl(
    tmp_path: Path, urls: list[str], env: dict[str, str] | None = None, **settings: Any
) -> Crawl:
    out, log, runner = tmp_path / "crawl.json", tmp_path / "crawl.log", tmp_path / "probe.py"
    # A file, not `-c`: Scrapy reads the source of spider callbacks.
    runner.write_text(RUNNER)
    args = {"urls": urls, "out": str(out), "settings": FAST | {"LOG_FILE": str(log)} | settings}
    # Run from tmp_path so nothing the crawl writes lands in the repository.
    env = os.environ | {"PYTHONPATH": str(REPO)} | (env or {})
    subprocess.run(
        [sys.executable, str(runner), json.dumps(args)],
        cwd=tmp_path,
        env=env,
        check=True,
        timeout=90,
    )
    return Crawl(json.loads(out.read_text()), log.read_text())


def test_every_fault_route_ends_in_a_counted_outcome(
    tmp_path: Path, fault_server: FaultServer
) -> None:
    routes = [
        "/article/1",
        "/article/2",
        "/private/1",
        "/delay?n=20",
        "/delay?n=20&b=1",
        "/trickle",
        "/status/500",
        "/status/503?ra=1&times=1",
        "/drop",
        "/partial",
        "/redirect-loop",
        "/huge",
        "/cp1251",
        "/wrong-charset",
        "/article/3",
    ]
    result = crawl(tmp_path, [fault_server.url(r) for r in routes])

    # Other pages of the same crawl still arrive, decoded to the exact text.
    for path in ("/article/1", "/article/2", "/article/3", "/status/503?ra=1&times=1"):
        assert result.item(path) is not None, path
    for path in ("/cp1251", "/wrong-charset"):
        item = result.item(path)
        assert item is not None
        assert "Минфин Республики Казахстан" in item["text"]
        assert item["flags"] == []

    # robots.txt: Disallow obeyed, not even requested.
    assert fault_server.hits("/private/1") == []
    assert result.stats["robotstxt/forbidden"] == 1

    # Timeouts (before and after headers, and a trickle): tried 1 + RETRY_TIMES, then given up.
    for path in ("/delay?n=20", "/delay?n=20&b=1", "/trickle"):
        assert result.failure(path)["error"] == "DownloadTimeoutError"
    assert len(fault_server.hits("/trickle")) == 3
    assert len(fault_server.hits("/delay")) == 6
    assert result.stats["retry/reason_count/scrapy.exceptions.DownloadTimeoutError"] == 6

    # 5xx retried with backoff, then the HTTP error reaches the errback.
    assert len(fault_server.hits("/status/500")) == 3
    assert result.failure("/status/500")["error"] == "HttpError"
    assert result.stats["retry/backoff"] >= 2 + 6

    # Reset and short bodies: retried, never an item.
    # Twisted's connection pool itself retries a GET once when a reused connection dies.
    assert 3 <= len(fault_server.hits("/drop")) <= 6
    assert 3 <= len(fault_server.hits("/partial")) <= 6
    assert result.item("/drop") is None
    assert result.item("/partial") is None
    assert result.stats["retry/reason_count/scrapy.exceptions.ResponseDataLossError"] == 2

    # Redirect loop: stops at REDIRECT_MAX_TIMES.
    assert len(fault_server.hits("/redirect-loop")) <= 6
    assert "Discarding <GET " in result.log  # a chain of distinct URLs, so no dupefilter
    assert result.item("/redirect-loop") is None

    # Huge page: aborted at DOWNLOAD_MAXSIZE, never parsed.
    assert result.item("/huge") is None
    assert "exceeded DOWNLOAD_MAXSIZE" in result.log or "larger than" in result.log

    assert result.stats["retry/max_reached"] >= 5
    assert "Gave up retrying" in result.log


def test_retry_after_holds_the_whole_host(tmp_path: Path, fault_server: FaultServer) -> None:
    routes = ["/status/429?ra=1&times=1", "/status/503?ra_date=1&times=1"]
    routes += [f"/article/{n}" for n in range(4)]
    result = crawl(tmp_path, [fault_server.url(r) for r in routes], **ONE_AT_A_TIME)
    assert len(result.items) == 6
    assert result.stats["retry/retry_after"] == 2
    log = sorted(fault_server.log, key=lambda hit: hit.time)
    asked = [(i, hit) for i, hit in enumerate(log) if hit.retry_after_until is not None]
    assert len(asked) == 2
    for i, hit in asked:
        assert hit.retry_after_until is not None
        assert log[i + 1].time >= hit.retry_after_until, (hit.path, log[i + 1].path)


def test_retry_after_beyond_the_cap_defers_the_host(
    tmp_path: Path, fault_server: FaultServer
) -> None:
    routes = ["/status/429?ra=86400"] + [f"/article/{n}" for n in range(3)]
    result = crawl(tmp_path, [fault_server.url(r) for r in routes], **ONE_AT_A_TIME)
    refused = fault_server.hits("/status/429")
    assert len(refused) == 1
    assert all(hit.time <= refused[0].time for hit in fault_server.log)
    assert result.stats["retry/deferred_hosts"] == 1
    assert "retry_after_beyond_cap" in result.log


@pytest.mark.parametrize(
    ("robots", "fetched"),
    [((503, "unavailable"), False), ((500, ""), False), ((429, ""), False), (None, True)],
    ids=["503", "500", "429", "404"],
)
def test_robots_fails_closed_on_server_errors(
    tmp_path: Path, fault_server: FaultServer, robots: tuple[int, str] | None, fetched: bool
) -> None:
    fault_server.robots = robots
    urls = [fault_server.url(f"/article/{n}") for n in range(3)]
    result = crawl(tmp_path, urls)
    content_hits = [p for p in fault_server.paths() if p != "/robots.txt"]
    if fetched:
        assert len(content_hits) == 3
        assert len(result.items) == 3
    else:
        assert content_hits == []
        assert result.items == []
        assert result.stats["robotstxt/unreachable"] == 1
        assert result.stats["robotstxt/blocked_unreachable"] == 3
        assert "blocked_by_robots_unreachable" in result.log


def test_robots_timeout_fails_closed(tmp_path: Path, fault_server: FaultServer) -> None:
    fault_server.robots_delay = 5
    result = crawl(tmp_path, [fault_server.url("/article/1")], RETRY_TIMES=0)
    assert fault_server.hits("/article/1") == []
    assert result.stats["robotstxt/unreachable"] == 1


def test_egress_blocks_redirects_and_links_to_other_loopback_hosts(
    tmp_path: Path, fault_server_at: Any
) -> None:
    portal = fault_server_at("127.0.0.2")
    canary = fault_server_at("127.0.0.3")
    secret = canary.url("/secret")
    legacy = f"http://0x7f000003:{canary.port}/legacy"
    urls = [
        portal.url("/article/1"),
        portal.url(f"/redirect?to={secret}"),
        portal.url(f"/links?href={canary.url('/linked')}"),
        portal.url(f"/redirect?to=http://localhost:{canary.port}/by-name"),
        canary.url("/direct"),
        legacy,
        "file:///etc/passwd",
    ]
    result = crawl(tmp_path, urls, EGRESS_ALLOW_NETS=["127.0.0.2/32"])
    assert canary.log == []
    assert result.item("/article/1") is not None
    assert result.stats["egress/blocked"] >= 6
    assert "egress blocked: 127.0.0.3: loopback address 127.0.0.3" in result.log
    assert "localhost resolves to a loopback address 127.0.0.1" in result.log
    assert "scheme 'file' is not http(s)" in result.log


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[FaultServer, Path]]:
    """A fault server speaking HTTPS with a certificate from a throwaway CA, and that CA."""
    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost", "127.0.0.1").configure_cert(context)
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    server = FaultServer(ssl_context=context).start()
    yield server, ca_file
    server.stop()


@pytest.mark.parametrize("trusted", [False, True], ids=["unknown-ca", "configured-ca"])
def test_tls_certificates_are_verified(
    tmp_path: Path, tls_server: tuple[FaultServer, Path], trusted: bool
) -> None:
    server, ca_file = tls_server
    url = f"https://localhost:{server.port}/article/1"
    # OpenSSL reads SSL_CERT_FILE for its default trust store, which Twisted uses.
    env = {"SSL_CERT_FILE": str(ca_file)} if trusted else {"SSL_CERT_FILE": os.devnull}
    result = crawl(tmp_path, [url], env=env, RETRY_TIMES=0)
    if trusted:
        assert result.item("/article/1") is not None
    else:
        assert result.items == []
        assert server.hits("/article/1") == []
        assert result.stats["robotstxt/unreachable"] == 1
        assert "certificate verify failed" in result.log


# -- the pure rules behind the middlewares ------------------------------------------------

PUBLIC = EgressPolicy()


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1",
        "127.1",
        "0177.0.0.1",
        "0x7f000001",
        "2130706433",
        "0.0.0.0",  # noqa: S104  (a URL host here, not a bind address)
        "[::1]",
        "[::ffff:127.0.0.1]",
        "169.254.169.254",
        "100.64.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "224.0.0.1",
        "240.0.0.1",
        "[fe80::1]",
        "[fc00::1]",
    ],
)
def test_private_ip_literals_are_refused(host: str) -> None:
    assert PUBLIC.url_refusal("http", host.strip("[]")) is not None


@pytest.mark.parametrize("scheme", ["file", "data", "ftp", "s3", "gopher", "javascript", ""])
def test_only_http_schemes_pass(scheme: str) -> None:
    assert "not http(s)" in (PUBLIC.url_refusal(scheme, "example.kz") or "")


@pytest.mark.parametrize("host", ["93.184.216.34", "tengrinews.kz", "[2a00:1450:4001::1]"])
def test_public_hosts_pass_the_static_check(host: str) -> None:
    assert PUBLIC.url_refusal("https", host.strip("[]")) is None


def test_allow_nets_let_only_the_listed_addresses_through() -> None:
    policy = EgressPolicy.from_cidrs(["127.0.0.2/32"])
    assert policy.refusal(ipaddress.ip_address("127.0.0.2")) is None
    assert policy.refusal(ipaddress.ip_address("127.0.0.3")) == "loopback address 127.0.0.3"
    with pytest.raises(ValueError, match="EGRESS_ALLOW_NETS"):
        EgressPolicy.from_cidrs(["127.0.0.0/33"])


def test_ip_literal_reads_legacy_forms_without_dns() -> None:
    assert ip_literal("0x7f.1") == ipaddress.ip_address("127.0.0.1")
    assert ip_literal("portal.test") is None


NOW = datetime(2026, 11, 24, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        (b"120", 120.0),
        ("7", 7.0),
        ("Tue, 24 Nov 2026 12:00:30 GMT", 30.0),
        ("Tue, 24 Nov 2026 11:00:00 GMT", 0.0),  # already past
        ("soon", None),
        (None, None),
    ],
)
def test_retry_after_forms(header: str | bytes | None, seconds: float | None) -> None:
    assert parse_retry_after(header, NOW) == seconds


def test_backoff_grows_jitters_and_stays_under_the_ceiling() -> None:
    rng = random.Random(7)  # noqa: S311  (jitter, not cryptography)
    delays = [backoff_delay(n, 1.0, 10.0, rng) for n in (1, 2, 3, 4, 5, 6)]
    for n, delay in enumerate(delays, start=1):
        full = min(10.0, 2 ** (n - 1))
        assert full / 2 <= delay <= full


@pytest.mark.parametrize(
    ("status", "verdict"),
    [
        (200, "parse"),
        (404, "allow_all"),
        (401, "allow_all"),
        (429, "unreachable"),
        (500, "unreachable"),
        (503, "unreachable"),
    ],
)
def test_robots_status_verdicts(status: int, verdict: str) -> None:
    assert robots_verdict(status) == verdict


def test_robots_body_is_cut_at_a_line_end() -> None:
    body = b"User-agent: *\nDisallow: /a\nDisallow: /b\n"
    assert truncate_robots(body, 30) == b"User-agent: *\nDisallow: /a\n"
    assert truncate_robots(body, 1000) == body
