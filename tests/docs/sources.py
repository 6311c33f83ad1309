"""The program side of the docs tests: what the code defines, read from the code itself
(the config variable list, the CLI parsers, the Litestar route table, the metric
registries and the label enums), never from a copy kept in the tests."""

from __future__ import annotations

import contextlib
import functools
import io
import re
from collections.abc import Iterator
from pathlib import Path

from litestar import Litestar
from prometheus_client import CollectorRegistry

from sayna_sip.common.config import ServerConfig
from sayna_sip.common.metrics import new_registry
from sayna_sip.common.recorder import RecorderMetrics
from sayna_sip.forwarder.metrics import ForwarderMetrics
from sayna_sip.ingress.app import create_app
from sayna_sip.ingress.metrics import IngressMetrics
from sayna_sip.router.metrics import RouterMetrics

ROOT = Path(__file__).resolve().parents[2]
SOURCE_DIRS = [ROOT / "libs", ROOT / "services", ROOT / "cli"]


def registries() -> dict[str, CollectorRegistry]:
    """Each service's metric registry, built as the service builds it."""
    ingress, router, forwarder = new_registry(), new_registry(), new_registry()
    IngressMetrics.create(ingress)
    RouterMetrics(router)
    ForwarderMetrics(forwarder)
    for registry in (router, forwarder):  # both record deliveries in SIP_ATTEMPTS
        RecorderMetrics(registry)
    return {"ingress": ingress, "router": router, "forwarder": forwarder}


def exported_names(registry: CollectorRegistry) -> dict[str, tuple[str, list[str]]]:
    """Exposed metric name (counters with `_total`) -> (type, label names)."""
    # A labelled metric with no child yet has no samples: take its label names from
    # the collector (prometheus-client keeps them only in a private attribute).
    label_names = {
        getattr(c, "_name", ""): list(getattr(c, "_labelnames", ()))
        for c in registry._names_to_collectors.values()
    }
    out: dict[str, tuple[str, list[str]]] = {}
    for family in registry.collect():
        name = family.name + ("_total" if family.type == "counter" else "")
        out[name] = (family.type, label_names.get(family.name, []))
    return out


def ingress_app() -> Litestar:
    return create_app(ServerConfig())


@functools.cache  # building the app costs ~0.1 s; a docs check asks once per route
def ingress_routes() -> frozenset[tuple[str, str]]:
    """(method, path) of every ingress route, OpenAPI's own pages aside (only /schema)."""
    out: set[tuple[str, str]] = set()
    for route in ingress_app().routes:
        if route.path.startswith("/schema") and route.path != "/schema":
            continue
        for method in getattr(route, "methods", set()):
            if method not in ("HEAD", "OPTIONS"):
                out.add((method, route.path))
    return frozenset(out)


def source_files() -> Iterator[Path]:
    for top in SOURCE_DIRS:
        yield from top.rglob("*.py")


def log_events() -> set[str]:
    """Every `event=<name>` a service or the CLI writes (read from the source)."""
    found: set[str] = set()
    for path in source_files():
        found.update(re.findall(r"event=([a-z][a-z0-9_]*)", path.read_text(encoding="utf-8")))
    return found


def help_text(argv: list[str]) -> str:
    """`sayna-sip <argv> --help`, as the parser prints it."""
    from sayna_sip.cli.main import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
        main([*argv, "--help"])
    return out.getvalue()


def flags(argv: list[str]) -> set[str]:
    return set(re.findall(r"(?<![\w-])(--[a-z][a-z-]*)", help_text(argv))) - {"--help"}


def otel_variables() -> set[str]:
    """The OTEL_* variables our tracing setup reads itself, and the SDK's standard ones."""
    from opentelemetry.sdk import environment_variables

    text = (ROOT / "libs/common/src/sayna_sip/common/tracing.py").read_text(encoding="utf-8")
    ours = set(re.findall(r'"(OTEL_[A-Z_]+)"', text))
    return ours | {n for n in dir(environment_variables) if n.startswith("OTEL_")}


def tooling_variables() -> set[str]:
    """Variables the test, bench and compose-test tooling reads (environ or `${X:-...}`)."""
    found: set[str] = set()
    files = [*(ROOT / "tests").rglob("*.py"), *(ROOT / "tests").rglob("*.sh")]
    files += [*(ROOT / "bench").rglob("*.py"), *(ROOT / "mutation").rglob("*.py")]
    for path in files:
        if path.is_relative_to(ROOT / "tests/docs"):
            continue
        text = path.read_text(encoding="utf-8")
        found.update(re.findall(r'environ(?:\.get\(|\[)"([A-Z][A-Z0-9_]+)"', text))
        found.update(re.findall(r'"([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+)": ', text))  # a child's env
        found.update(re.findall(r"\$\{([A-Z][A-Z0-9_]+):-", text))
        if path.suffix == ".sh":  # what a script exports for the tools it runs
            found.update(re.findall(r"^\s*export ([A-Z][A-Z0-9_]+)=", text, re.M))
    # make's overridable variables (`make test TEST_JOBS=1`)
    found.update(re.findall(r"^([A-Z][A-Z0-9_]+) \?=", (ROOT / "Makefile").read_text(), re.M))
    return found


def actions(argv: list[str]) -> list[str]:
    """The subcommands (`{list,redrive}`) the parser of `sayna-sip <argv>` offers."""
    usage = help_text(argv).split("\n\n")[0]
    found = re.search(r"\{([a-z][a-z,-]*)\}", usage)
    return found.group(1).split(",") if found else []
