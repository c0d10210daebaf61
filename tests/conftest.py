"""Test fixtures live in tests/fixtures/, one module per kind of real server they start."""

pytest_plugins = [
    "tests.fixtures.redis_server",
    "tests.fixtures.stores",
    "tests.fixtures.portal",
    "tests.fixtures.faults",
    "tests.fixtures.browser_portal",
    "tests.fixtures.sinks",
    "tests.fixtures.sentry_ingest",
]
