"""How projects adopt linkprobe in CI: the pre-commit hooks (.pre-commit-hooks.yaml), run by
pre-commit itself against a local git repository, offline; the composite GitHub Action
(action.yml), validated statically, and its check step's script run as the runner would."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import sysconfig
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import Target

ROOT = Path(__file__).parents[1]
# What pre-commit's own install brings (pip, setuptools) or builds (linkprobe) is not lent.
NOT_LENT = re.compile(r"(pip|setuptools|pkg_resources|_distutils_hack|linkprobe)([-.].*)?|distutils-.*|__.*")
GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "test", "GIT_AUTHOR_EMAIL": "test@example.invalid",
    "GIT_COMMITTER_NAME": "test", "GIT_COMMITTER_EMAIL": "test@example.invalid",
}  # fmt: skip


def lent_dependencies(folder: Path) -> Path:
    """linkprobe's runtime dependencies, lent from this test environment (links to its packages),
    so the hook's environment works without an index: pre-commit still creates it and installs
    linkprobe into it from this checkout (`pip install .`, its build backend and entry point)."""
    folder.mkdir()
    for entry in Path(sysconfig.get_paths()["purelib"]).iterdir():
        if not NOT_LENT.fullmatch(entry.name):
            (folder / entry.name).symlink_to(entry)
    return folder


async def run(*command: str, cwd: Path, env: dict[str, str]) -> tuple[int, str]:
    """Run a command while the event loop serves the target; its exit code and output."""
    process = await asyncio.create_subprocess_exec(
        *command, cwd=cwd, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    out, _ = await asyncio.wait_for(process.communicate(), timeout=600)
    assert process.returncode is not None
    return process.returncode, out.decode()


def git(*args: str, cwd: Path) -> None:
    subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, env={**os.environ, **GIT_IDENTITY}
    )


async def test_the_pre_commit_hooks_check_the_files_committed_and_the_configs_inputs(
    tmp_path: Path, target: Target
) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "linkprobe.toml").write_text(
        '[check]\ninputs = ["good.md"]\nallow-private = true\nretries = 0\n'
    )
    (project / "good.md").write_text(f"[fine]({target.url('/status/200')})\n")
    (project / "bad.md").write_text(f"[gone]({target.url('/status/404')})\n")
    (project / "notes.txt").write_text(f"{target.url('/status/500')}\n")  # not a document type: not passed
    git("init", "-q", ".", cwd=project)
    git("add", ".", cwd=project)
    env = {
        **os.environ, **GIT_IDENTITY,
        "PRE_COMMIT_HOME": str(tmp_path / "pre-commit"),
        "VIRTUALENV_OVERRIDE_APP_DATA": str(tmp_path / "virtualenv"),  # nothing left in the home folder
        "PIP_NO_INDEX": "1", "PIP_NO_DEPS": "1",  # offline: nothing from an index
        "PIP_NO_BUILD_ISOLATION": "0",  # pip's spelling of --no-build-isolation: the seeded setuptools builds
        "PYTHONPATH": str(lent_dependencies(tmp_path / "lent")),
    }  # fmt: skip
    code, out = await run(
        sys.executable,
        "-m",
        "pre_commit",
        "try-repo",
        str(ROOT),
        "--all-files",
        "--verbose",
        cwd=project,
        env=env,
    )
    assert code == 1, out  # a hook failed
    hooks = dict(re.findall(r"^(check links.*?)\.{3,}(Passed|Failed)$", out, re.MULTILINE))
    assert hooks == {
        "check links (linkprobe)": "Failed",
        "check links of linkprobe.toml's inputs (linkprobe)": "Passed",
    }, out
    assert "- exit code: 2" in out and target.url("/status/404") in out and "found in bad.md:1" in out
    assert target.url("/status/500") not in out  # a .txt file is not a document the hook checks
    assert target.url("/status/200") not in out.split("check links (linkprobe)")[1]  # --only broken


def action() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "action.yml").read_text())
    return loaded


def test_the_action_is_a_composite_whose_inputs_are_declared_and_used() -> None:
    spec = action()
    assert {"name", "description", "inputs", "outputs", "runs"} <= set(spec)
    assert spec["runs"]["using"] == "composite"
    steps = spec["runs"]["steps"]
    text = (ROOT / "action.yml").read_text()
    used = set(re.findall(r"\$\{\{\s*inputs\.([\w-]+)\s*\}\}", text))
    assert used == set(spec["inputs"]), "every input is used, and only declared inputs are"
    for name, declared in spec["inputs"].items():
        assert declared["description"] and "default" in declared, name
    for step in steps:
        if "run" in step:
            assert step["shell"] == "bash", step["name"]
            assert "${{" not in step["run"], f"{step['name']}: inputs reach scripts through env only"
            subprocess.run(["bash", "-n"], input=step["run"], text=True, check=True)
        else:
            assert step["uses"].startswith("actions/setup-python@")
    runs = [step["run"] for step in steps if "run" in step]
    assert any("pip install" in run for run in runs)
    assert any("linkprobe check" in run for run in runs)
    ids = {step.get("id") for step in steps}
    for output in spec["outputs"].values():
        assert re.fullmatch(r"\$\{\{ steps\.([\w-]+)\.outputs\.[\w-]+ \}\}", output["value"])
        assert output["value"].split(".")[1] in ids


@pytest.mark.parametrize(("fail", "step_code"), [("true", 2), ("false", 0)])
async def test_the_actions_check_step_runs_linkprobe_with_its_inputs(
    tmp_path: Path, target: Target, fail: str, step_code: int
) -> None:
    step = next(step for step in action()["runs"]["steps"] if step.get("id") == "check")
    outputs = tmp_path / "github_output"
    baseline = tmp_path / "baseline.json"
    baseline.write_text("[]")
    env = {
        **os.environ, "GITHUB_OUTPUT": str(outputs),
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",  # linkprobe, as if installed
        "ARGS": f"--allow-private  --retries 0 {target.url('/status/404')} {target.url('/status/200')}",
        "BASELINE": str(baseline), "FAIL_ON": "new", "CACHE": "", "MAX_AGE": "", "FORMAT": "json",
        "OUTPUT": str(tmp_path / "report.json"), "FAIL": fail,
    }  # fmt: skip
    code, out = await run("bash", "-c", step["run"], cwd=tmp_path, env=env)
    assert code == step_code, out
    assert outputs.read_text() == "exit-code=2\n"
    report = json.loads((tmp_path / "report.json").read_text())
    assert [(row["status_code"], row["change"]) for row in report] == [(404, "new"), (200, "new")]
