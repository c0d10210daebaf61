"""Sending one outbox delivery through apprise: the message, its idempotency key, the outcome.

Channels are apprise URLs (``mailto://``, ``tgram://``, ``slack://``, ``json://``) plus our
own ``console://``, which prints the message to stdout. Apprise retries nothing (its default
``retry=0``): the outbox does the retrying, with backoff, and knows what was sent.

Idempotency: a ``json://``, ``xml://`` or ``form://`` webhook receives the delivery id as
``Idempotency-Key`` and the alert id as ``X-Alert-Id`` headers, so a retry after an
ambiguous timeout (the request went out, no answer came) is recognisable by the receiver.
E-mail and chat channels have no such header: there an ambiguous retry can duplicate, and
the delivery is marked ``ambiguous`` for the operator.

Secrets: a channel URL holds tokens and passwords. They never reach our logs or errors:
errors are scrubbed of every part of the URL (`channel_secrets`, `scrub`), and while a
message is sent a filter scrubs apprise's and urllib3's own log records (their DEBUG lines
print request URLs).
"""

from __future__ import annotations

import logging
import re
import sys
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, quote, unquote, urlsplit

import apprise
from apprise.decorators import notify as apprise_plugin

from pipelines.store.outbox import Outcome

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

logger = logging.getLogger(__name__)

HEADER_SCHEMES = frozenset({"json", "jsons", "xml", "xmls", "form", "forms"})
TITLE_LENGTH = 200
URL_LENGTH = 2000
SNIPPET_MARK = "*"  # around a matched term in a snippet: plain text reads it on every channel
# Shorter URL parts are hosts, ports and words like "hook", not secrets; scrubbing them
# would only garble errors.
SECRET_MIN_LENGTH = 6
REDACTED = "***"
# Telegram bot tokens and URL userinfo passwords, caught even when not configured by us.
SECRET_PATTERNS = (re.compile(r"bot\d+:[\w-]+"), re.compile(r"(?<=://)[^/@\s:]*:[^/@\s]*(?=@)"))
# Apprise's warning for any transport failure: its log at WARNING cannot tell a refused
# connection from a read timeout after the request went out, so both count as "may have
# arrived" (the retry is the same; only the duplicate warning shown to operators differs).
AMBIGUOUS_SIGNS = ("Connection error", "timed out", "RemoteDisconnected", "Connection aborted")
HTTP_ERROR = re.compile(r"error=(\d{3})")
RETRYABLE_4XX = frozenset({408, 425, 429})
# Loggers that print request URLs (tokens in the path) at DEBUG.
NOISY_LOGGERS = ("apprise", "urllib3.connectionpool", "urllib3.connection")


@apprise_plugin(on="console", name="Presswatch console")
def _console(body: str, title: str, *args: Any, **kwargs: Any) -> bool:
    """The ``console://`` channel: the message on stdout, for demos and first runs."""
    sys.stdout.write(f"\n=== {title}\n{body}\n")
    sys.stdout.flush()
    return True


@dataclass(frozen=True)
class Message:
    title: str
    body: str


def one_line(text: str, limit: int = TITLE_LENGTH) -> str:
    """`text` on one line (no CR/LF to inject a mail header) of at most `limit` characters."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def render(alert: dict[str, Any], delivery: dict[str, Any]) -> Message:
    """The message a delivery carries, from the alert's facts as they are now.

    A rule alert names the rule and matched terms, the story's title, its original
    (source, time, link), the copies so far and a snippet with the match marked; an
    update says how many copies the story reached; a notice or digest has its own text.
    """
    facts = alert.get("message") or {}
    if "subject" in facts:
        return Message(one_line(facts["subject"]), facts.get("body") or "")
    copies = alert.get("copies", 1)
    # Every crawled field goes on one line: a title with CR/LF must not fake body lines.
    title = one_line(facts.get("title") or "(untitled)")
    rule = one_line(alert.get("rule") or "")
    if delivery.get("kind") == "update":
        subject = f"[presswatch] {rule}: now {copies} copies: {title}"
    else:
        subject = f"[presswatch] {rule}: {title}"
    original = facts.get("original") or {}
    source = one_line(original.get("name") or original.get("source") or "unknown source")
    when = one_line(original.get("published_at") or "time unknown")
    link = one_line(original.get("url") or "", limit=URL_LENGTH)
    lines = [
        f"Rule: {rule}",
        f"Matched: {one_line(', '.join(facts.get('terms') or []))}",
        f"Story: {title}",
        f"Original: {source}, {when}" + (f", {link}" if link else ""),
        f"Copies so far: {copies}",
    ]
    if facts.get("snippet"):
        lines += ["", facts["snippet"]]
    lines += ["", f"Alert {alert['id']}"]
    return Message(one_line(subject), "\n".join(lines))


def channel_secrets(url: str) -> set[str]:
    """The parts of a channel URL that may be secret: the whole URL, user, password, each
    path segment and query value (raw and decoded), long enough to be a credential."""
    found = {url}
    try:
        parts = urlsplit(url)
        # A netloc without "@" (tgram://BOTID:TOKEN/CHAT) is split at ":" as if host:port.
        pieces = [parts.username, parts.password, parts.netloc, *parts.netloc.split(":")]
        pieces += parts.path.split("/")
        pieces += [value for _, value in parse_qsl(parts.query, keep_blank_values=True)]
        # The host of tgram://TOKEN/CHAT and similar is the token itself.
        if parts.scheme not in HEADER_SCHEMES and parts.scheme not in ("mailto", "mailtos"):
            pieces.append(parts.hostname)
    except ValueError:
        return found
    for piece in pieces:
        if piece and len(piece) >= SECRET_MIN_LENGTH:
            found.update({piece, unquote(piece), quote(piece, safe="")})
    return found


def scrub(text: str, secrets: Iterable[str]) -> str:
    """`text` with every token-like pattern and every secret (longest first) replaced."""
    for pattern in SECRET_PATTERNS:
        text = pattern.sub(REDACTED, text)
    for secret in sorted(secrets, key=len, reverse=True):
        if secret:
            text = text.replace(secret, REDACTED)
    return text


class _Redacting(logging.Filter):
    def __init__(self, secrets: set[str]) -> None:
        super().__init__()
        self.secrets = secrets

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = scrub(message, self.secrets)
        if clean != message:
            record.msg, record.args = clean, None
        return True


@contextmanager
def redacting_logs(secrets: set[str]) -> Iterator[None]:
    """Scrub `secrets` from the log records of apprise and urllib3 while the block runs."""
    redactor = _Redacting(secrets)
    loggers = [logging.getLogger(name) for name in NOISY_LOGGERS]
    for noisy in loggers:
        noisy.addFilter(redactor)
    try:
        yield
    finally:
        for noisy in loggers:
            noisy.removeFilter(redactor)


def with_idempotency(url: str, key: str, alert_id: str) -> str:
    """`url` with the delivery's idempotency headers, for the webhook schemes that send them."""
    scheme = url.split("://", 1)[0].lower()
    if scheme not in HEADER_SCHEMES:
        return url
    headers = f"+Idempotency-Key={quote(key, safe='')}&+X-Alert-Id={quote(alert_id, safe='')}"
    return f"{url}{'&' if '?' in url else '?'}{headers}"


def classify(result_ok: bool, status_name: str, log_lines: list[str]) -> Outcome:
    """The outcome of one apprise call from its status and captured log lines (scrubbed)."""
    if result_ok:
        return Outcome(ok=True)
    warnings_only = [line for line in log_lines if not line.startswith("DEBUG")]
    error = "; ".join(warnings_only or log_lines) or f"apprise reported {status_name}"
    text = " ".join(log_lines)
    if status_name == "NOMATCH":
        return Outcome(ok=False, error=error, permanent=True)
    if status_name == "TIMEOUT" or any(sign in text for sign in AMBIGUOUS_SIGNS):
        return Outcome(ok=False, error=error, ambiguous=True)
    codes = {int(code) for code in HTTP_ERROR.findall(text)}
    permanent = bool(codes) and all(400 <= c < 500 and c not in RETRYABLE_4XX for c in codes)
    return Outcome(ok=False, error=error, permanent=permanent)


def send(url: str, message: Message, *, key: str, alert_id: str, timeout_s: float = 0) -> Outcome:
    """Send `message` to the channel `url` once; never raises for a delivery failure.

    `timeout_s` bounds the whole call (0: only apprise's per-request timeouts, 4 s each).
    """
    secrets = channel_secrets(url)
    target = with_idempotency(url, key, alert_id)
    secrets |= channel_secrets(target) - {quote(key, safe=""), key, alert_id}
    notifier = apprise.Apprise()
    with redacting_logs(secrets), warnings.catch_warnings():
        # apprise 2.3's PGP plugin imports the stdlib `imghdr`, deprecated since 3.11.
        warnings.filterwarnings("ignore", category=DeprecationWarning, message=".*imghdr")
        if not notifier.add(target):
            return Outcome(
                ok=False, error="apprise does not accept this channel URL", permanent=True
            )
        shown = scrub(notifier[0].url(privacy=True), secrets)
        logger.debug("sending delivery %s to %s", key, shown)
        # The message is plain text, said so: apprise then escapes it for each channel's own
        # format (HTML for e-mail and Telegram, CommonMark for Slack), so crawled titles and
        # snippets cannot inject markup. Left unsaid, apprise passes it through raw.
        result = notifier.notify(
            body=message.body,
            title=message.title,
            body_format=apprise.NotifyFormat.TEXT,
            timeout=timeout_s,
            log_level=logging.DEBUG,
        )
        lines = [_entry_line(entry, secrets) for entry in result.logs()]
    outcome = classify(bool(result), result.status.name, lines)
    if not outcome.ok:
        logger.info("delivery %s to %s failed: %s", key, shown, outcome.error)
    return outcome


def _entry_line(entry: Any, secrets: set[str]) -> str:
    level = logging.getLevelName(entry.level) if isinstance(entry.level, int) else entry.level
    return f"{level}: {scrub(str(entry.message), secrets)}"
