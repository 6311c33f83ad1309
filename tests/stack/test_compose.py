"""compose.yaml and the Dockerfile: valid for docker-compose, shaped as operations
expect (one-shot provisioner first, health checks, scalable forwarders, every setting
passed through), and running commands that exist."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from sayna_sip.cli.main import COMMANDS
from sayna_sip.common.config_load import VARIABLES

ROOT = Path(__file__).resolve().parents[2]
APP_SERVICES = ("provisioner", "ingress", "router", "forwarder")
LONG_RUNNING = ("ingress", "router", "forwarder")
CONFIG_IN_CONTAINER = "/etc/sayna-sip/config.yaml"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    """compose.yaml parsed (YAML merge keys resolved, as compose resolves them)."""
    data = yaml.safe_load((ROOT / "compose.yaml").read_text())
    assert isinstance(data, dict)
    return data


def config_variables() -> set[str]:
    """Every environment variable ServerConfig reads."""
    names = set(VARIABLES)
    assert {"SIP_HOOKS_JSON", "LIVEKIT_API_SECRET", "NATS_URL", "PORT"} <= names
    return names


def test_docker_compose_validates_the_file() -> None:
    exe = shutil.which("docker-compose")
    if exe is None:  # .ci/run installs Debian's docker-compose; skip only where it cannot
        pytest.skip("docker-compose is not installed (apt-get install docker-compose)")
    out = subprocess.run(
        [exe, "-f", str(ROOT / "compose.yaml"), "config", "--quiet"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr


def test_services_and_start_order(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == {"nats", *APP_SERVICES}
    assert services["provisioner"]["restart"] == "no"
    assert services["provisioner"]["depends_on"]["nats"]["condition"] == "service_healthy"
    for name in LONG_RUNNING:
        deps = services[name]["depends_on"]
        assert deps["provisioner"]["condition"] == "service_completed_successfully", name
        assert deps["nats"]["condition"] == "service_healthy", name
        assert services[name]["restart"] == "unless-stopped", name


def test_nats_has_jetstream_a_persistent_volume_and_a_healthcheck(
    compose: dict[str, Any],
) -> None:
    nats = compose["services"]["nats"]
    assert nats["image"].startswith("nats:")
    assert "--jetstream" in nats["command"]
    store = nats["command"][nats["command"].index("--store_dir") + 1]
    volume = next(v for v in nats["volumes"] if v.endswith(f":{store}"))
    assert volume.split(":")[0] in compose["volumes"]  # a named volume, not the container
    assert "healthz" in " ".join(nats["healthcheck"]["test"])


def test_health_checks_probe_readiness(compose: dict[str, Any]) -> None:
    services = compose["services"]
    ports = {"ingress": "PORT", "router": "ROUTER_PORT", "forwarder": "FORWARDER_PORT"}
    for name, variable in ports.items():
        port = services[name]["environment"][variable]
        probe = " ".join(services[name]["healthcheck"]["test"])
        assert f"127.0.0.1:{port}/readyz" in probe, name


def test_only_the_ingress_is_published_and_forwarders_scale(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert services["ingress"]["ports"] == ["${INGRESS_PUBLISH:-3001}:3001"]
    for name, svc in services.items():
        assert "container_name" not in svc, name  # a fixed name forbids --scale
        if name != "ingress":
            assert "ports" not in svc, name
    assert services["forwarder"]["deploy"]["replicas"] >= 2


def test_every_setting_is_passed_through(compose: dict[str, Any]) -> None:
    wanted = config_variables()
    for name in APP_SERVICES:
        env = compose["services"][name]["environment"]
        assert wanted <= set(env), f"{name} misses {sorted(wanted - set(env))}"
        passed = {k for k, v in env.items() if str(v).startswith(f"${{{k}:-")}
        pinned = {"HOST", "PORT", "ROUTER_PORT", "FORWARDER_PORT"}  # container-internal
        assert wanted - pinned <= passed, f"{name} pins {sorted(wanted - pinned - passed)}"


def test_commands_exist_and_read_the_mounted_config(compose: dict[str, Any]) -> None:
    for name in APP_SERVICES:
        svc = compose["services"][name]
        assert svc["command"][0] in COMMANDS, name
        assert svc["command"][1:] == ["--config", CONFIG_IN_CONTAINER], name
        assert any(v.endswith(f":{CONFIG_IN_CONTAINER}:ro") for v in svc["volumes"]), name
        assert svc["build"] == "." and svc["image"].startswith("sayna-sip:"), name


def _instructions(text: str) -> list[tuple[str, str]]:
    joined = re.sub(r"\\\n\s*", " ", text)
    pairs = []
    for line in joined.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            word, _, rest = line.strip().partition(" ")
            pairs.append((word.upper(), rest.strip()))
    return pairs


def test_dockerfile_runs_the_cli_as_non_root_with_every_package() -> None:
    steps = _instructions((ROOT / "Dockerfile").read_text())
    entry = json.loads(next(rest for word, rest in steps if word == "ENTRYPOINT"))
    scripts = tomllib.loads((ROOT / "cli/pyproject.toml").read_text())["project"]["scripts"]
    assert entry == ["sayna-sip"] and entry[0] in scripts
    users = [rest for word, rest in steps if word == "USER"]
    assert users and users[-1] not in ("root", "0")
    makefile = (ROOT / "Makefile").read_text()
    members = re.search(r"^MEMBERS := (.+)$", makefile, re.M)
    assert members is not None
    install = " ".join(rest for word, rest in steps if word == "RUN" and "pip install" in rest)
    for member in members.group(1).split():
        assert f"./{member}" in install, member
        assert (ROOT / member / "pyproject.toml").is_file()
    for word, rest in steps:
        if word == "COPY" and not rest.startswith("--from"):
            assert (ROOT / rest.split()[0]).exists(), rest


def test_cli_entry_point_answers_help() -> None:
    exe = ROOT / ".venv/bin/sayna-sip"
    out = subprocess.run([str(exe), "--help"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0 and "send-test-event" in out.stdout


@pytest.fixture(scope="module")
def cluster() -> dict[str, Any]:
    """compose.cluster.yaml parsed."""
    data = yaml.safe_load((ROOT / "compose.cluster.yaml").read_text())
    assert isinstance(data, dict)
    return data


def test_docker_compose_validates_the_cluster_file() -> None:
    exe = shutil.which("docker-compose")
    if exe is None:
        pytest.skip("docker-compose is not installed (apt-get install docker-compose)")
    out = subprocess.run(
        [exe, "-f", str(ROOT / "compose.cluster.yaml"), "config", "--quiet"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr


def test_the_cluster_has_three_routed_nats_nodes_and_replicates_three_times(
    cluster: dict[str, Any],
) -> None:
    services = cluster["services"]
    nodes = [n for n in services if n.startswith("nats-")]
    assert nodes == ["nats-1", "nats-2", "nats-3"]
    for name in nodes:
        cmd = " ".join(services[name]["command"])
        assert "--jetstream" in cmd and f"--server_name={name}" in cmd, name
        assert all(f"nats://{n}:6222" in cmd for n in nodes), name
        assert services[name]["volumes"] == [f"{name}-data:/data"], name
    env = services["provisioner"]["environment"]
    assert env["NATS_REPLICAS"] == "${NATS_REPLICAS:-3}"
    assert all(f"nats://{n}:4222" in env["NATS_URL"] for n in nodes)
    assert set(services["provisioner"]["depends_on"]) == set(nodes)


def test_the_cluster_publishes_only_the_balancer_in_front_of_two_checked_ingresses(
    cluster: dict[str, Any],
) -> None:
    services = cluster["services"]
    published = {n for n, svc in services.items() if "ports" in svc}
    assert published == {"balancer"}
    assert services["balancer"]["ports"] == ["${INGRESS_PUBLISH:-3001}:3001"]
    cfg = (ROOT / "deploy" / "haproxy.cfg").read_text()
    mounted = services["balancer"]["volumes"][0].split(":")
    assert mounted[0] == "./deploy/haproxy.cfg" and mounted[1] in services["balancer"]["command"]
    assert "option httpchk GET /readyz" in cfg
    for name in ("ingress-1", "ingress-2"):
        assert f"server {name} {name}:3001" in cfg
        assert services[name]["command"][0] == "ingress"
    assert services["router"]["deploy"]["replicas"] >= 2
    assert services["forwarder"]["deploy"]["replicas"] >= 2


def test_the_cluster_passes_every_setting_like_compose_yaml(
    compose: dict[str, Any], cluster: dict[str, Any]
) -> None:
    own = {"NATS_URL", "NATS_REPLICAS"}  # the cluster's defaults differ, on purpose
    single = compose["services"]["router"]["environment"]
    for name in ("provisioner", "ingress-1", "ingress-2", "router", "forwarder"):
        env = cluster["services"][name]["environment"]
        assert {k: v for k, v in env.items() if k not in own} == {
            k: v for k, v in single.items() if k not in own
        }, name
