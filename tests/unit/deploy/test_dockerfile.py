"""The Dockerfile, read with Docker's own parser (no Docker engine needed)."""

from __future__ import annotations

import fnmatch
import re
import tomllib

import dockerfile
import pytest

from tests.unit.deploy.files import ROOT, find

RUNTIME_UID = 10001


@pytest.fixture(scope="module")
def commands() -> tuple[dockerfile.Command, ...]:
    parsed: tuple[dockerfile.Command, ...] = dockerfile.parse_file(str(ROOT / "Dockerfile"))
    return parsed


def _args(commands: tuple[dockerfile.Command, ...]) -> dict[str, str]:
    found = {}
    for command in commands:
        if command.cmd == "ARG":
            name, _, default = command.value[0].partition("=")
            found[name] = default
    return found


def _stages(commands: tuple[dockerfile.Command, ...]) -> list[list[dockerfile.Command]]:
    stages: list[list[dockerfile.Command]] = []
    for command in commands:
        if command.cmd == "FROM":
            stages.append([])
        if stages:
            stages[-1].append(command)
    return stages


def _dockerignore() -> list[str]:
    lines = (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def _ignored(path: str, patterns: list[str]) -> bool:
    """Whether ``path`` (or a folder above it) is excluded from the build context."""
    parts = path.strip("/").split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for pattern in patterns:
        for prefix in prefixes:
            if fnmatch.fnmatchcase(prefix, pattern.removeprefix("**/")) or fnmatch.fnmatchcase(
                prefix.rsplit("/", 1)[-1], pattern.removeprefix("**/")
            ):
                return True
    return False


def test_every_stage_starts_from_python_3_11_slim(commands: tuple[dockerfile.Command, ...]) -> None:
    args = _args(commands)
    images = []
    for command in commands:
        if command.cmd == "FROM":
            image = command.value[0]
            images.append(re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], image))
    assert images and set(images) == {"python:3.11-slim"}


def test_runtime_stage_runs_as_numeric_non_root_user_kubernetes_expects(
    commands: tuple[dockerfile.Command, ...],
) -> None:
    runtime = _stages(commands)[-1]
    users = [command.value[0] for command in runtime if command.cmd == "USER"]
    assert users, "the runtime stage never leaves root"
    uid, _, gid = users[-1].partition(":")
    assert uid == str(RUNTIME_UID) and gid == str(RUNTIME_UID)
    for service in ("ingress", "filter", "delivery"):
        deployment = find("Deployment", f"postline-{service}", "base")
        context = deployment["spec"]["template"]["spec"]["securityContext"]
        assert context["runAsUser"] == RUNTIME_UID and context["fsGroup"] == RUNTIME_UID


def test_package_is_installed_with_the_lock_file_as_constraints(
    commands: tuple[dockerfile.Command, ...],
) -> None:
    runs = [command.value[0] for command in commands if command.cmd == "RUN"]
    installs = [run for run in runs if re.search(r"pip install\b", run)]
    assert any(re.search(r"-c requirements\.lock \.(\s|$)", run) for run in installs), installs


def test_entrypoint_is_the_postline_console_script(
    commands: tuple[dockerfile.Command, ...],
) -> None:
    entrypoints = [command for command in commands if command.cmd == "ENTRYPOINT"]
    assert entrypoints and entrypoints[-1].json, "ENTRYPOINT must be exec form (signals reach it)"
    assert entrypoints[-1].value == ("postline",)
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert "postline" in project["project"]["scripts"]


def test_image_has_no_healthcheck_because_probes_call_readyz(
    commands: tuple[dockerfile.Command, ...],
) -> None:
    assert not [command for command in commands if command.cmd == "HEALTHCHECK"]


def test_copied_sources_exist_and_are_not_excluded_by_dockerignore(
    commands: tuple[dockerfile.Command, ...],
) -> None:
    patterns = _dockerignore()
    copies = [c for c in commands if c.cmd in ("COPY", "ADD") and not c.flags]
    sources = [source for copy in copies for source in copy.value[:-1]]
    assert sources
    for source in sources:
        assert (ROOT / source).exists(), f"COPY {source}: no such file in the repository"
        assert not _ignored(source, patterns), f"COPY {source}: excluded by .dockerignore"


def test_every_package_directory_of_the_build_is_copied(
    commands: tuple[dockerfile.Command, ...],
) -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    package_dirs = project["tool"]["setuptools"]["package-dir"].values()
    copied = [
        source.rstrip("/")
        for command in commands
        if command.cmd == "COPY" and not command.flags
        for source in command.value[:-1]
    ]
    for directory in package_dirs:
        assert any(
            directory == source or directory.startswith(source + "/") for source in copied
        ), f"package directory {directory} is not copied into the image"
    needed = {"pyproject.toml", "requirements.lock", project["project"]["readme"]}
    assert needed <= set(copied)


def test_dockerignore_keeps_tests_and_local_state_out_of_the_context() -> None:
    patterns = _dockerignore()
    for path in (".git", ".venv", "tests/unit", "build/typecheck", "shared/__pycache__"):
        assert _ignored(path, patterns), f"{path} would be sent to the Docker daemon"
