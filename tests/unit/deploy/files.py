"""Loading the deployment files under test: paths, YAML documents, configs.

Every deploy test reads the files as committed (no Docker, no cluster): these
helpers find them from the repository root and parse them once per call.
``rendered(folder)`` is what ``kubectl kustomize`` (or ``kustomize build``)
makes of a kustomization, for the overlays; ``KUSTOMIZE`` is None without either.
Files named ``*.patch.yaml`` are kustomize patches, not whole objects.
"""

from __future__ import annotations

import functools
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from postline.app.settings import Settings, load_settings

ROOT = Path(__file__).resolve().parents[3]
DEPLOY = ROOT / "deploy"
KUBERNETES = DEPLOY / "kubernetes"
SERVICES = ("ingress", "filter", "delivery", "audit")

Doc = dict[str, Any]


def load_yaml(path: Path) -> Any:
    with path.open(encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def yaml_documents(path: Path) -> list[Doc]:
    """Every non-empty document of a (multi-document) YAML file."""
    with path.open(encoding="utf-8") as handle:
        return [doc for doc in yaml.safe_load_all(handle) if doc]


def kubernetes_files() -> list[Path]:
    return sorted(KUBERNETES.rglob("*.yaml"))


def kubernetes_objects(*parts: str) -> Iterator[tuple[Path, Doc]]:
    """(file, object) for every Kubernetes object under ``deploy/kubernetes/<parts>``."""
    for path in sorted(KUBERNETES.joinpath(*parts).rglob("*.yaml")):
        if path.name.endswith(".patch.yaml"):
            continue
        for doc in yaml_documents(path):
            if doc.get("kind") != "Kustomization":
                yield path, doc


def find(kind: str, name: str, *parts: str) -> Doc:
    """The one object of ``kind`` named ``name``; fails the test if absent."""
    for _, doc in kubernetes_objects(*parts):
        if doc["kind"] == kind and doc["metadata"]["name"] == name:
            return doc
    raise AssertionError(f"no {kind} named {name} under deploy/kubernetes/{'/'.join(parts)}")


def workload(service: str) -> Doc:
    """The Deployment or StatefulSet that runs ``service``."""
    for kind in ("Deployment", "StatefulSet"):
        try:
            return find(kind, f"postline-{service}", "base")
        except AssertionError:
            continue
    raise AssertionError(f"no workload runs {service}")


def pod_spec(obj: Doc) -> Doc:
    spec: Doc = obj["spec"]["template"]["spec"]
    return spec


def container(obj: Doc, name: str) -> Doc:
    for item in pod_spec(obj)["containers"]:
        if item["name"] == name:
            result: Doc = item
            return result
    raise AssertionError(f"{obj['metadata']['name']} has no container {name}")


def kubernetes_settings() -> Settings:
    return load_settings(KUBERNETES / "base" / "postline.toml")


def compose_settings() -> Settings:
    return load_settings(DEPLOY / "compose" / "postline.toml")


def _kustomize_command() -> list[str] | None:
    if shutil.which("kubectl"):
        return ["kubectl", "kustomize"]
    if shutil.which("kustomize"):
        return ["kustomize", "build"]
    return None


KUSTOMIZE = _kustomize_command()
KUSTOMIZATIONS = ("base", "monitoring", "overlays/dev", "overlays/production")


@functools.cache
def rendered(folder: str) -> tuple[Doc, ...]:
    """Every object ``kubectl kustomize deploy/kubernetes/<folder>`` outputs."""
    assert KUSTOMIZE is not None
    result = subprocess.run(
        [*KUSTOMIZE, str(KUBERNETES / folder)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, f"{folder} does not build:\n{result.stderr}"
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


def rendered_find(folder: str, kind: str, name: str) -> Doc:
    for doc in rendered(folder):
        if doc["kind"] == kind and doc["metadata"]["name"] == name:
            return doc
    raise AssertionError(f"{folder} renders no {kind} named {name}")
