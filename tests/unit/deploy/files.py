"""Loading the deployment files under test: paths, YAML documents, configs.

Every deploy test reads the files as committed (no Docker, no cluster): these
helpers find them from the repository root and parse them once per call.
"""

from __future__ import annotations

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
