"""The deployment: the compose topology proven as local processes, the files checked statically
(no Docker engine runs here)."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from linkprobe.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    return data


def test_integration_script_runs_the_topology() -> None:
    run = subprocess.run(
        ["bash", str(DEPLOY / "integration.sh"), sys.executable],
        check=False,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "integration ok: 300 results (150 ok, 150 broken), served by both replicas" in run.stdout


def test_only_the_front_publishes_a_port() -> None:
    services = compose()["services"]
    assert set(services) == {"redis", "api", "worker", "front"}
    assert [name for name, spec in services.items() if "ports" in spec] == ["front"]


def test_redis_is_durable() -> None:
    redis = compose()["services"]["redis"]
    command = " ".join(redis["command"])
    assert "--appendonly yes" in command and "--appendfsync everysec" in command
    assert any(volume.endswith(":/data") for volume in redis["volumes"])
    assert "redis-data" in compose()["volumes"]


@pytest.mark.parametrize("service", ["api", "worker", "front"])
def test_every_service_builds_from_its_own_dockerfile(service: str) -> None:
    build = compose()["services"][service]["build"]
    dockerfile = (DEPLOY / build["context"] / build["dockerfile"]).resolve()
    assert dockerfile == DEPLOY / service / "Dockerfile"
    text = dockerfile.read_text()
    for source in re.findall(r"^COPY (\S+)", text, re.MULTILINE):
        assert (ROOT / source).exists(), f"{service}: COPY {source} not in the repository"


@pytest.mark.parametrize("service", ["api", "worker"])
def test_python_services_run_a_real_command_with_pinned_requirements(service: str) -> None:
    text = (DEPLOY / service / "Dockerfile").read_text()
    cmd = re.search(r"^CMD (\[.*\])$", text, re.MULTILINE)
    assert cmd is not None
    argv = yaml.safe_load(cmd.group(1))
    assert argv[0] == "linkprobe" and argv[1] == service
    build_parser().parse_args(argv[1:])  # exits (fails the test) on an unknown flag
    assert compose()["services"][service]["environment"]["LINKPROBE_REDIS_URL"].startswith("redis://redis:")
    lines = (DEPLOY / service / "requirements.txt").read_text().split()
    pinned = {line.split("==")[0].lower() for line in lines if "==" in line}
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    for requirement in declared:
        name = re.split(r"[<>=\[ ]", requirement)[0].lower()
        assert name in pinned, f"{service}: {name} is not pinned"


def test_front_proxies_the_api_without_buffering_events() -> None:
    conf = (DEPLOY / "front" / "nginx.conf").read_text()
    assert "server api:8000;" in conf and "listen 8080;" in conf
    events = conf[conf.index("/events$") :]
    assert "proxy_buffering off;" in events
    assert compose()["services"]["front"]["ports"] == ["8080:8080"]


def runs_as(dockerfile: str) -> str | None:
    """The user the container's command runs as: the last USER, or None (root) without one."""
    users = re.findall(r"^USER\s+(\S+)", dockerfile, re.MULTILINE | re.IGNORECASE)
    return users[-1] if users else None


def is_root(user: str | None) -> bool:
    return user is None or user.split(":")[0] in ("root", "0")


@pytest.mark.parametrize("service", ["api", "worker"])
def test_dockerfiles_run_as_non_root(service: str) -> None:
    user = runs_as((DEPLOY / service / "Dockerfile").read_text())
    assert not is_root(user), f"{service} runs as root"
    assert re.search(rf"useradd .*\b{re.escape(str(user))}\b", (DEPLOY / service / "Dockerfile").read_text())


@pytest.mark.parametrize(
    ("text", "root"),
    [("FROM x\n", True), ("USER root\n", True), ("USER 0:0\n", True), ("USER app\nUSER root\n", True),
     ("USER root\nUSER app\n", False), ("user app\n", False)],
)  # fmt: skip
def test_the_non_root_check_itself(text: str, root: bool) -> None:
    assert is_root(runs_as(text)) == root
