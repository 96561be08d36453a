"""deploy/prometheus/rules.yml: valid, tested alerts that watch the real queues.

``promtool`` (Debian package ``prometheus``) checks the syntax and runs the
alert unit tests of rules.test.yml; without it those two tests are skipped and
the pure checks below still run.
"""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from postline.app.settings import topology_for
from postline.topology import Stage
from tests.unit.deploy.files import DEPLOY, KUBERNETES, kubernetes_settings, load_yaml
from tests.unit.deploy.promql import RULES, rule_expressions, selectors

PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool not installed (apt-get install prometheus)"
)


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run(
        [PROMTOOL, *args],
        cwd=DEPLOY / "prometheus",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def promql_regex(literal: str) -> re.Pattern[str]:
    """A PromQL ``=~`` value (a Go string literal body) as an anchored Python regex."""
    return re.compile(literal.replace("\\\\", "\\"))


@needs_promtool
def test_rules_pass_promtool_check() -> None:
    result = promtool("check", "rules", RULES.name)
    assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
def test_alerts_fire_exactly_as_their_unit_tests_expect() -> None:
    result = promtool("test", "rules", "rules.test.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_has_a_severity_summary_and_description() -> None:
    alerts = [r for g in load_yaml(RULES)["groups"] for r in g["rules"] if "alert" in r]
    assert len(alerts) >= 8
    for alert in alerts:
        assert alert["labels"]["severity"] in ("warning", "critical"), alert["alert"]
        assert alert["annotations"]["summary"] and alert["annotations"]["description"]


def test_every_alert_has_a_unit_test() -> None:
    tests = load_yaml(DEPLOY / "prometheus" / "rules.test.yml")["tests"]
    tested = {t["alertname"] for test in tests for t in test.get("alert_rule_test", [])}
    alerts = {r["alert"] for g in load_yaml(RULES)["groups"] for r in g["rules"] if "alert" in r}
    assert alerts == tested, f"alerts without a test: {sorted(alerts - tested)}"


def test_postline_series_are_selected_by_the_scrape_job() -> None:
    for expr in rule_expressions():
        for selector in selectors(expr):
            if selector.metric.startswith(("postline_", "process_")):
                assert ("job", "=", "postline") in selector.matchers, expr
            if selector.metric == "up" or selector.metric.startswith("rabbitmq_alarms_"):
                jobs = {("job", "=", "postline"), ("job", "=", "rabbitmq")}
                assert jobs & set(selector.matchers), f"{expr}: which scrape job?"


def test_queue_matchers_name_queues_of_the_real_topology() -> None:
    topology = topology_for(kubernetes_settings())
    names = [queue.name for queue in topology.queues]
    work_queues = {topology.queue_name(stage) for stage in Stage}
    for expr in rule_expressions():
        for selector in selectors(expr):
            for label, op, value in selector.matchers:
                if label != "queue":
                    continue
                assert op == "=~", expr
                matched = {name for name in names if promql_regex(value).fullmatch(name)}
                assert matched, f"{value!r} matches no queue of {names}"
                if selector.metric == "rabbitmq_queue_consumers":
                    assert matched == work_queues, f"{value!r} should match exactly the work queues"
                if "parked" in value and "|" not in value:
                    assert matched == {topology.parked_queue}


def test_prometheus_rule_manifest_is_rules_yml_wrapped() -> None:
    manifest = load_yaml(KUBERNETES / "monitoring" / "prometheusrule.yaml")
    assert manifest["kind"] == "PrometheusRule"
    assert manifest["spec"] == load_yaml(RULES), "run deploy/prometheus/make-prometheusrule"
