"""deploy/grafana/postline.json: an importable dashboard bound to a chosen data source."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from tests.unit.deploy.promql import dashboard, panels
from tests.unit.deploy.test_prometheus_rules import needs_promtool, promtool

DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}


def test_dashboard_offers_a_prometheus_datasource_variable() -> None:
    board = dashboard()
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    assert board["uid"] and board["title"]


def test_every_panel_and_query_uses_the_datasource_variable() -> None:
    for panel in panels(dashboard()):
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == DATASOURCE, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == DATASOURCE, panel["title"]


def test_panels_have_unique_ids_and_fit_the_grid() -> None:
    seen = set()
    for panel in panels(dashboard()):
        assert panel["id"] not in seen, panel["title"]
        seen.add(panel["id"])
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24, panel["title"]
        if panel["type"] != "row":
            assert panel["description"], f"{panel['title']}: say what the panel shows"


@needs_promtool
def test_every_query_is_valid_promql(tmp_path: Path) -> None:
    """promtool has no expression checker, so the queries go through a throwaway rules file."""
    rules = []
    for index, panel in enumerate(p for p in panels(dashboard()) if p["type"] != "row"):
        for target in panel["targets"]:
            expr = target["expr"].replace("$__rate_interval", "5m")
            expr = re.sub(r"\$\{?namespace\}?", "postline", expr)
            assert "$" not in expr, f"unknown variable in {target['expr']}"
            rules.append({"record": f"panel_{index}_{target['refId']}", "expr": expr})
    path = tmp_path / "dashboard-rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = promtool("check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr


def test_dashboard_configmap_is_postline_json_labelled_for_the_grafana_sidecar() -> None:
    from tests.unit.deploy.files import KUBERNETES, load_yaml
    from tests.unit.deploy.promql import DASHBOARD

    configmap = load_yaml(KUBERNETES / "monitoring" / "grafana-dashboard.yaml")
    assert configmap["kind"] == "ConfigMap"
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    embedded = configmap["data"]["postline.json"]
    assert embedded == DASHBOARD.read_text(encoding="utf-8"), "run deploy/grafana/make-configmap"


def test_dashboard_shows_oldest_message_age_and_the_deferral_ratio() -> None:
    titles = {panel["title"]: panel for panel in panels(dashboard())}
    age = titles["Oldest message age per queue"]["targets"][0]["expr"]
    assert "time() - " in age and "rabbitmq_queue_head_message_timestamp" in age
    ratio = titles["Deferral ratio"]["targets"][0]["expr"]
    assert 'result="deferred"' in ratio and " / " in ratio
