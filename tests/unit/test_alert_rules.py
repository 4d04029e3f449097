"""The alert rules and the dashboard as files: they parse, every alert has a severity and a
runbook entry, and promtool checks the rules and runs their unit tests
(deploy/prometheus/alerts.test.yml: each alert fires on the series meaning trouble, not
otherwise). That they name only metrics the services export is checked against a live
scrape in tests/integration/test_observability.py."""

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
PROMETHEUS = REPO / "deploy" / "prometheus"


def promtool() -> str | None:
    """On PATH, or unpacked by scripts/promtool.sh into .data/tools."""
    found = shutil.which("promtool")
    local = Path(os.environ.get("KRING_DATA_DIR", REPO / ".data")) / "tools" / "promtool"
    return found or (str(local) if local.is_file() else None)


def test_every_alert_has_a_severity_and_a_runbook_entry() -> None:
    rules = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())
    alerts = [rule for group in rules["groups"] for rule in group["rules"]]
    runbook = (REPO / "docs" / "RUNBOOK.md").read_text()
    for alert in alerts:
        assert alert["labels"]["severity"] in ("warning", "critical")
        anchor = alert["annotations"]["runbook"].removeprefix("docs/RUNBOOK.md#")
        assert f"### {alert['alert']}\n" in runbook and anchor == alert["alert"].lower()
    dashboard = json.loads((REPO / "deploy" / "grafana" / "kring.json").read_text())
    assert all(panel["targets"] for panel in dashboard["panels"])


@pytest.mark.skipif(promtool() is None, reason="promtool not installed: run scripts/promtool.sh")
def test_promtool_accepts_the_rules_and_each_alert_fires_when_it_should() -> None:
    tool = promtool()
    assert tool is not None
    for command in (["check", "rules", "alerts.yml"], ["test", "rules", "alerts.test.yml"]):
        done = subprocess.run([tool, *command], cwd=PROMETHEUS, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr
