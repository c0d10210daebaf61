"""deploy/ keeps its promises: the systemd unit, the env file example, compose and Docker.

The files are parsed, not run: neither systemd nor a Docker daemon is needed here.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from crawler.telemetry import SECRET_ENV_NAME
from scheduler.service import STOP_CRAWLS_BOUND_S, ServiceConfig

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"
DATA_DIR = "/var/lib/presswatch"
STORE_URL = "redis://:${REDIS_PASSWORD}@redis:6379/0"
ENV_LINE = re.compile(r"^\s*(#\s*)?([A-Za-z_][A-Za-z0-9_]*)=(.*)$")
# a URL password that is not a ${VAR} or $$VAR reference
LITERAL_URL_PASSWORD = re.compile(r"://[^/\s@]*:(?!\$\{|\$\$)[^/\s@]+@")
DURATION = re.compile(r"^(\d+)\s*(s|sec|min|m)?$")


def unit_file(path: Path) -> dict[str, list[tuple[str, str]]]:
    """A systemd unit as {section: [(key, value), ...]}: keys repeat, order kept."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current = None
    for raw in path.read_text("utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], [])
            continue
        key, sep, value = line.partition("=")
        assert current is not None, f"{path.name}: {raw!r} comes before any [Section]"
        assert sep, f"{path.name}: {raw!r} is not KEY=VALUE"
        current.append((key.strip(), value.strip()))
    return sections


def one(section: list[tuple[str, str]], key: str) -> str:
    values = [value for name, value in section if name == key]
    assert len(values) == 1, f"{key}= should be set once, found {values}"
    return values[0]


def seconds(duration: str) -> float:
    match = DURATION.match(duration.strip())
    assert match, f"unexpected duration {duration!r}"
    return int(match.group(1)) * (60 if match.group(2) in ("min", "m") else 1)


def crawl_stop_bound() -> float:
    """How long the service may take to stop: the crawls' grace, then SIGTERM and SIGKILL
    waits (scheduler.service.stop_crawls)."""
    defaults = {f.name: f.default for f in dataclasses.fields(ServiceConfig)}
    return float(defaults["stop_timeout"]) + STOP_CRAWLS_BOUND_S


def env_file(path: Path) -> dict[str, tuple[str, bool]]:
    """{name: (value, commented out)} of a KEY=value environment file."""
    found = {}
    for line in path.read_text("utf-8").splitlines():
        match = ENV_LINE.match(line)
        if match:
            found[match.group(2)] = (match.group(3), bool(match.group(1)))
    return found


def strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for key, item in value.items() for s in [str(key), *strings(item)]]
    if isinstance(value, list):
        return [s for item in value for s in strings(item)]
    return []


@pytest.fixture(scope="module")
def service() -> list[tuple[str, str]]:
    return unit_file(DEPLOY / "presswatch.service")["Service"]


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text("utf-8"))


# --- systemd ----------------------------------------------------------------------------


def test_unit_runs_presswatch_run_as_its_own_user_with_an_env_file(
    service: list[tuple[str, str]],
) -> None:
    assert one(service, "User") == "presswatch"
    assert one(service, "EnvironmentFile") == "/etc/presswatch/presswatch.env"
    exec_start = one(service, "ExecStart").split()
    assert exec_start[0].startswith("/")
    assert exec_start[0].endswith("/presswatch")
    assert exec_start[1:] == ["run"]
    install = unit_file(DEPLOY / "presswatch.service")["Install"]
    assert one(install, "WantedBy") == "multi-user.target"


def test_unit_restarts_on_failure_and_outlasts_the_crawl_stop_bound(
    service: list[tuple[str, str]],
) -> None:
    assert one(service, "Restart") == "on-failure"
    assert one(service, "KillSignal") == "SIGTERM"
    # SIGTERM to the service alone: it stops its crawls itself, within the bound
    assert one(service, "KillMode") == "mixed"
    assert seconds(one(service, "TimeoutStopSec")) > crawl_stop_bound()


def test_unit_is_hardened_and_writes_only_its_data_dir(service: list[tuple[str, str]]) -> None:
    assert one(service, "NoNewPrivileges") == "true"
    assert one(service, "ProtectSystem") == "strict"
    assert one(service, "PrivateTmp") == "true"
    assert one(service, "ReadWritePaths").split() == [DATA_DIR]
    assert f"/var/lib/{one(service, 'StateDirectory')}" == DATA_DIR


def test_unit_holds_no_secret(service: list[tuple[str, str]]) -> None:
    for key, value in service:
        if key == "Environment":
            name = value.partition("=")[0]
            assert not SECRET_ENV_NAME.search(name), f"{name} belongs in the EnvironmentFile"
        assert not LITERAL_URL_PASSWORD.search(value), f"{key}= holds a password"


# --- the environment file example -------------------------------------------------------


def test_env_example_names_every_setting_and_fills_in_no_secret() -> None:
    path = DEPLOY / "presswatch.env.example"
    variables = env_file(path)
    for name in (
        "PRESSWATCH_STORE",
        "PRESSWATCH_SOURCES",
        "PRESSWATCH_RULES",
        "SENTRY_DSN",
        "SENTRY_ENVIRONMENT",
    ):
        assert name in variables, f"{name} is missing"
        assert not variables[name][1], f"{name} should be set, not commented out"
    secret_names = [name for name in variables if SECRET_ENV_NAME.search(name)]
    assert {"SENTRY_DSN", "TG_TOKEN", "SMTP_PASSWORD"} <= set(secret_names)
    for name in secret_names:
        value, commented = variables[name]
        assert commented or value == "", f"{name} carries a value in the example"
    store = variables["PRESSWATCH_STORE"][0]
    assert store.startswith("sqlite:///")
    assert not LITERAL_URL_PASSWORD.search(store)
    text = path.read_text("utf-8")
    assert "0600" in text
    assert "${TG_TOKEN}" in text  # how rules.yaml refers to a secret


# --- compose ----------------------------------------------------------------------------


def test_compose_redis_keeps_data_and_requires_a_password(compose: dict[str, Any]) -> None:
    redis = compose["services"]["redis"]
    assert redis["image"].startswith("redis:7")
    command = " ".join(redis["command"])
    for flag in ("--appendonly yes", "--appendfsync everysec", "--maxmemory-policy noeviction"):
        assert flag in command
    # the password from the environment, never a literal
    assert re.search(r"requirepass .*\$\$REDIS_PASSWORD", command)
    assert redis["environment"]["REDIS_PASSWORD"].startswith("${REDIS_PASSWORD:?")
    assert any(volume.endswith(":/data") for volume in redis["volumes"])
    assert "CMD-SHELL" in redis["healthcheck"]["test"]
    assert "$$REDIS_PASSWORD" in " ".join(redis["healthcheck"]["test"])


def test_compose_redis_is_on_the_internal_network_only(compose: dict[str, Any]) -> None:
    redis = compose["services"]["redis"]
    assert "ports" not in redis
    assert "network_mode" not in redis
    for network in redis["networks"]:
        assert compose["networks"][network]["internal"] is True


def test_compose_service_waits_for_healthy_redis_and_uses_it(compose: dict[str, Any]) -> None:
    presswatch = compose["services"]["presswatch"]
    assert presswatch["depends_on"]["redis"]["condition"] == "service_healthy"
    assert presswatch["environment"]["PRESSWATCH_STORE"] == STORE_URL
    assert presswatch["env_file"] == ["presswatch.env"]
    assert presswatch["restart"] == "on-failure"
    assert presswatch["command"] == ["presswatch", "run"]
    assert seconds(presswatch["stop_grace_period"]) > crawl_stop_bound()
    assert set(presswatch["networks"]) == {"store", "default"}  # Redis, and the web
    build = presswatch["build"]
    dockerfile = (DEPLOY / build["context"] / build["dockerfile"]).resolve()
    assert dockerfile == DEPLOY / "Dockerfile"


def test_compose_holds_no_secret_literal(compose: dict[str, Any]) -> None:
    for text in strings(compose):
        assert not LITERAL_URL_PASSWORD.search(text), text
        assert not re.search(r"requirepass\s+[\"']?(?!\$\$)\w", text), text
        assert not re.search(r"REDISCLI_AUTH=[\"']?(?!\$\$)\w", text), text


# --- the image --------------------------------------------------------------------------


def test_dockerfile_installs_from_the_lock_file_with_debian_chromium() -> None:
    text = (DEPLOY / "Dockerfile").read_text("utf-8")
    assert "uv.lock" in text
    assert "uv sync --locked --no-dev" in text
    assert "chromium" in text
    assert re.search(r"^USER presswatch$", text, re.MULTILINE)
    ignored = (DEPLOY / "Dockerfile.dockerignore").read_text("utf-8").splitlines()
    assert ignored[ignored.index("*") + 1 :]  # everything ignored but what is listed
    assert not any(line.startswith("!") and ".env" in line for line in ignored)


def test_readme_has_a_section_on_each_part() -> None:
    headings = re.findall(r"^## (.+)$", (DEPLOY / "README.md").read_text("utf-8"), re.MULTILINE)
    for part in ("systemd", "environment file", "Compose", "Sentry", "Redis settings"):
        assert any(part.lower() in heading.lower() for heading in headings), part
