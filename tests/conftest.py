"""Test-wide fixtures live in tests/fixtures; they are real servers, never mocks."""

pytest_plugins = [
    "tests.fixtures.nats",
    "tests.fixtures.https_sink",
    "tests.fixtures.livekit",
    "tests.fixtures.tracing",
    "tests.fixtures.proxy",
]
