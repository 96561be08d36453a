"""The PromQL of deploy/: every expression of the rules and the dashboard, and what it names.

A light reader, not a PromQL parser: promtool checks the syntax (when it is
installed); this finds metric names, label matchers and grouping labels so the
tests can hold them against the metrics the services define.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from tests.unit.deploy.files import DEPLOY, load_yaml

RULES = DEPLOY / "prometheus" / "rules.yml"
DASHBOARD = DEPLOY / "grafana" / "postline.json"

_SELECTOR = re.compile(r"\b([a-zA-Z_][a-zA-Z0-9_]*)\s*(\{[^}]*\})?")
_MATCHER = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"')
_GROUPING = re.compile(r"\b(?:by|without)\s*\(([^)]*)\)")
_PREFIXES = ("postline_", "rabbitmq_", "process_")


@dataclass(frozen=True)
class Selector:
    """``metric{label op "value", ...}`` as written in an expression."""

    metric: str
    matchers: tuple[tuple[str, str, str], ...]


def rule_expressions() -> list[str]:
    return [rule["expr"] for group in load_yaml(RULES)["groups"] for rule in group["rules"]]


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return loaded


def panels(board: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in board["panels"]:
        yield panel
        yield from panel.get("panels", [])


def dashboard_expressions() -> list[str]:
    return [target["expr"] for panel in panels(dashboard()) for target in panel.get("targets", [])]


def selectors(expr: str) -> list[Selector]:
    """Metric selectors of ``expr`` whose name starts with a known prefix."""
    found = []
    for match in _SELECTOR.finditer(_strip_strings_outside_braces(expr)):
        name = match.group(1)
        if name == "up" or name.startswith(_PREFIXES):
            matchers = tuple(_MATCHER.findall(match.group(2) or ""))
            found.append(Selector(name, matchers))
    return found


def grouping_labels(expr: str) -> set[str]:
    labels: set[str] = set()
    for group in _GROUPING.findall(expr):
        labels |= {label.strip() for label in group.split(",") if label.strip()}
    return labels


def _strip_strings_outside_braces(expr: str) -> str:
    """Blank out string literals that are not label values (legend text, regexes of functions)."""
    out, depth, in_string = [], 0, False
    for index, char in enumerate(expr):
        if char == '"' and (index == 0 or expr[index - 1] != "\\"):
            in_string = not in_string
        elif not in_string and char == "{":
            depth += 1
        elif not in_string and char == "}":
            depth -= 1
        out.append(" " if in_string and depth == 0 and char != '"' else char)
    return "".join(out)
