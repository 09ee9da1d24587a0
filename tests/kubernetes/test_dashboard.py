"""The Grafana dashboard (helm/flightbase/dashboards/flightbase.json) cannot drift from the metrics.

The metrics page is made in-process from the services' own code: the
jobqueue's and the registry's scrape-time collectors with sample data, and
the process-wide metrics (scheduler pass, admission wait, preemptions, upload
bytes, API latency) after observing one value each, exposed by
``prometheus_client``'s ``generate_latest`` and read back with its own
parser. Every PromQL expression of the dashboard (panels and variables) is
then checked against that page: each metric it names is a sample name there,
each label it matches on, groups by or shows in a legend is a label of those
metrics. The layout is checked as Grafana reads it: unique panel ids, a
24-column grid without overlaps, every panel on the dashboard's data source
variable, and every variable it uses defined.
"""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path

import pytest
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from flightbase_server.service import metrics as service_metrics
from flightbase_jobqueue import prometheus as jq
from flightbase_jobqueue.scheduling.types import ActiveJob, Job, Node, WorkspaceLimits
from flightbase_registry import prometheus as reg

DASHBOARD_PATH = Path(__file__).resolve().parents[2] / "helm" / "flightbase" / "dashboards" / "flightbase.json"
DASHBOARD = json.loads(DASHBOARD_PATH.read_text())
GRAFANA_VARIABLES = {"__rate_interval", "__interval", "__range"}
PROMQL_WORDS = {"sum", "max", "min", "avg", "count", "by", "without", "rate", "increase", "irate",
                "histogram_quantile", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "bool",
                "label_values", "topk", "bottomk", "clamp_min", "clamp_max", "abs", "time", "vector"}


def _together(collectors):
    class Registry:
        def collect(self):
            yield from REGISTRY.collect()
            for collector in collectors:
                yield from collector.collect()
    return Registry()


def metrics_page() -> dict[str, set[str]]:
    """The services' metrics page, as sample name -> its label names."""
    ws = f"dash-{uuid.uuid4().hex[:8]}"
    live = jq.LiveState(
        now=100.0,
        queued=(Job(id="q1", workspace=ws, gpus=2, submitted_at=10.0),),
        active=(ActiveJob(Job(id="r1", workspace=ws, gpus=1), {"n1": (0,)}, 50.0),),
        nodes=(Node("n1", 4, (1, 2, 3)),),
        limits={ws: WorkspaceLimits(quota=2)},
    )
    stored = jq.StoredCounts(jobs={(ws, "running"): 1, (ws, "queued"): 1}, held={ws: 1})
    counts = reg.RegistryCounts(datasets={ws: 1}, versions={ws: 2}, images={ws: 1},
                                storage={(ws, "datasets"): 10, (ws, "images"): 20})
    victim = Job(id="p1", workspace=ws, gpus=1)
    admitted = Job(id="a1", workspace=ws, gpus=1, submitted_at=0.0, enqueued_at=0.0)
    route = ("jobqueue", "GET", f"/dashboard-check/{ws}", "200")
    jq.observe_step(100.0, ["a1"], ["p1"], lambda: [ActiveJob(admitted, {"n1": (1,)}, 100.0),
                                                    ActiveJob(victim, {"n1": (2,)}, 0.0, stopping=True)])
    jq.SCHEDULER_PASS.observe(0.002)
    reg.count_upload(ws, 1024)
    service_metrics.API_LATENCY.labels(*route).observe(0.01)
    try:
        text = generate_latest(_together([jq.JobqueueCollector(live, stored), reg.RegistryCollector(counts)])).decode()
    finally:  # leave the process's registry as it was
        jq.ADMISSION_WAIT.remove(ws)
        jq.PREEMPTIONS.remove(ws)
        reg.UPLOAD_BYTES.remove(ws)
        service_metrics.API_LATENCY.remove(*route)
    names: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            names.setdefault(sample.name, set()).update(sample.labels)
    return names


@pytest.fixture(scope="module")
def page() -> dict[str, set[str]]:
    return metrics_page()


def panels() -> list[dict]:
    out = []
    for panel in DASHBOARD["panels"]:
        out.append(panel)
        out.extend(panel.get("panels", []))  # a collapsed row keeps its panels inside
    return out


def expressions() -> list[tuple[str, str, str]]:
    """(where, PromQL, legend) for every query of the dashboard."""
    out = []
    for panel in panels():
        for target in panel.get("targets", []):
            out.append((f"panel {panel['title']!r} {target['refId']}", target["expr"], target.get("legendFormat", "")))
    for variable in DASHBOARD["templating"]["list"]:
        if variable["type"] == "query":
            query = variable["query"]["query"] if isinstance(variable["query"], dict) else variable["query"]
            out.append((f"variable {variable['name']}", query, ""))
    return out


SELECTOR = re.compile(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(\{[^}]*\})?")
MATCHER = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"')
GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")
LABEL_VALUES = re.compile(r"label_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*,\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\)")


def metric_selectors(expr: str) -> list[tuple[str, dict[str, str]]]:
    """(metric name, {label: value matched}) for each metric the expression reads."""
    without_strings = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    without_grouping = GROUPING.sub("", without_strings)
    out = []
    for match in SELECTOR.finditer(without_grouping):
        name = match.group(1)
        rest = without_grouping[match.end():].lstrip()
        if name in PROMQL_WORDS or rest.startswith("(") or re.fullmatch(r"[0-9.e]+", name):
            continue
        if match.start() > 0 and without_grouping[match.start() - 1] in "$[":  # $workspace, [$__rate_interval]
            continue
        out.append(name)
    # the matchers, read from the original (strings intact), in the same order
    matchers = []
    for match in SELECTOR.finditer(GROUPING.sub("", expr)):
        if match.group(1) in out:
            matchers.append((match.group(1), {m.group(1): m.group(3) for m in MATCHER.finditer(match.group(2) or "")}))
    return [m for m in matchers if m[0] in out]


def balanced(expr: str) -> bool:
    """Brackets nest and close (outside strings): the part of PromQL's syntax a typo breaks most often."""
    stack = []
    for char in re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr):
        if char in "({[":
            stack.append(")}]"["({[".index(char)])
        elif char in ")}]" and (not stack or stack.pop() != char):
            return False
    return not stack


def check_query(page: dict[str, set[str]], where: str, expr: str, legend: str) -> None:
    assert balanced(expr), f"{where}: unbalanced brackets in {expr!r}"
    for name, label in LABEL_VALUES.findall(expr):
        assert name in page, f"{where}: {name} is not on the services' metrics page"
        assert label in page[name], f"{where}: {name} has no label {label}"
    selectors = metric_selectors(LABEL_VALUES.sub("", expr))
    assert selectors or LABEL_VALUES.search(expr), f"{where}: no metric in {expr!r}"
    labels: set[str] = set()
    for name, matchers in selectors:
        assert name in page, f"{where}: {name} is not on the services' metrics page (a typo, or a renamed metric?)"
        assert set(matchers) <= page[name], f"{where}: {name} has no label {set(matchers) - page[name]}"
        labels |= page[name]
    for grouping in GROUPING.findall(expr):
        grouped = {g.strip() for g in grouping.split(",") if g.strip()}
        assert grouped <= labels, f"{where}: grouped by {grouped - labels}, which none of its metrics has"
    assert set(re.findall(r"{{\s*(\w+)\s*}}", legend)) <= labels, f"{where}: the legend {legend!r} names a missing label"
    for variable in re.findall(r"\$\{?(\w+)", expr):
        assert variable in GRAFANA_VARIABLES or variable in {v["name"] for v in DASHBOARD["templating"]["list"]}, \
            f"{where}: ${variable} is not defined"


@pytest.mark.parametrize(("where", "expr", "legend"), expressions(), ids=[w for w, _, _ in expressions()])
def test_every_query_reads_metrics_the_services_expose(page, where, expr, legend):
    check_query(page, where, expr, legend)


@pytest.mark.parametrize(("expr", "legend", "why"), [
    ("sum(flightbase_gpu)", "", "flightbase_gpu is not"),  # a typo
    ("rate(flightbase_preemptions[5m])", "", "flightbase_preemptions is not"),  # a counter is read as _total
    ("flightbase_scheduler_pass_seconds", "", "flightbase_scheduler_pass_seconds is not"),  # a histogram's samples
    ('sum(flightbase_jobs{status="running"})', "", "has no label {'status'}"),
    ("sum by (node) (flightbase_gpus)", "", "grouped by {'node'}"),
    ("sum by (state) (flightbase_gpus)", "{{workspace}}", "the legend"),
    ('sum(flightbase_gpus{state=~"$states"})', "", "$states is not defined"),
    ("label_values(flightbase_gpus, workspace)", "", "has no label workspace"),
    ("label_values(flightbase_gpus_total, state)", "", "is not on the services' metrics page"),
    ("sum(rate(flightbase_upload_bytes_total[5m])", "", "unbalanced brackets"),
    ('sum(flightbase_gpus{state="free"]))', "", "unbalanced brackets"),
])
def test_a_query_that_drifted_is_caught(page, expr, legend, why):
    with pytest.raises(AssertionError, match=re.escape(why)):
        check_query(page, "q", expr, legend)


def test_the_selector_reader_finds_metrics_and_their_matchers():
    """The checker itself (a query the dashboard could have), so that it cannot pass by reading nothing."""
    expr = ('histogram_quantile(0.95, sum by (service, route, le) '
            '(rate(flightbase_api_request_duration_seconds_bucket{service=~"$service", status!="5.."}[$__rate_interval])))'
            ' / on (service) sum(flightbase_gpus)')
    assert metric_selectors(expr) == [("flightbase_api_request_duration_seconds_bucket", {"service": "$service",
                                                                                           "status": "5.."}),
                                      ("flightbase_gpus", {})]
    assert metric_selectors('sum(flightbase_pending_job{workspace=~"$workspace"})') == [
        ("flightbase_pending_job", {"workspace": "$workspace"})]


def test_every_metric_the_services_expose_is_on_the_dashboard(page):
    """A new metric family gets a panel (or this list of those left out on purpose gets a line)."""
    left_out: set[str] = set()
    shown = {name for _, expr, _ in expressions() for name, _ in metric_selectors(LABEL_VALUES.sub("", expr))}
    shown |= {name for _, expr, _ in expressions() for name, _ in LABEL_VALUES.findall(expr)}
    families = {re.sub(r"_(bucket|sum|count|total|created)$", "", name) for name in page if name.startswith("flightbase_")}
    shown_families = {re.sub(r"_(bucket|sum|count|total|created)$", "", name) for name in shown}
    assert families - left_out <= shown_families, f"not on the dashboard: {sorted(families - shown_families)}"


def test_what_the_issue_asks_for_is_shown():
    """Issue #16: queue depth and oldest wait per workspace, GPUs allocated and free, jobs by state, preemptions,
    the scheduler pass histogram, API latency by route, upload bytes."""
    queries = [expr for _, expr, _ in expressions()]

    def has(pattern: str) -> bool:
        return any(re.search(pattern, q) for q in queries)

    assert has(r"sum by \(workspace\) \(flightbase_pending_jobs\b")
    assert has(r"max by \(workspace\) \(flightbase_oldest_pending_seconds\b")
    assert has(r"sum by \(state\) \(flightbase_gpus\)")
    assert has(r"sum by \(state\) \(flightbase_jobs\b")
    assert has(r"rate\(flightbase_preemptions_total\b")
    assert has(r"histogram_quantile\(0\.\d+, sum by \(le\) \(rate\(flightbase_scheduler_pass_seconds_bucket\b")
    assert has(r"histogram_quantile\(0\.\d+, sum by \([^)]*\broute\b[^)]*\ble\) \(rate\(flightbase_api_request_duration_seconds_bucket")
    assert has(r"flightbase_upload_bytes_total\b")


def test_layout_is_what_grafana_reads():
    assert DASHBOARD["uid"] == "flightbase" and DASHBOARD["title"] == "Flightbase"
    ids = [p["id"] for p in panels()]
    assert len(ids) == len(set(ids))
    variables = {v["name"]: v for v in DASHBOARD["templating"]["list"]}
    assert variables["PROMETHEUS_DS"]["type"] == "datasource" and variables["PROMETHEUS_DS"]["query"] == "prometheus"
    cells: dict[tuple[int, int], str] = {}
    for panel in panels():
        grid = panel["gridPos"]
        assert grid["w"] >= 1 and grid["h"] >= 1 and grid["x"] >= 0 and grid["x"] + grid["w"] <= 24, panel["title"]
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in cells, f"{panel['title']!r} overlaps {cells[x, y]!r}"
                cells[x, y] = panel["title"]
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${PROMETHEUS_DS}"}, panel["title"]
        assert panel["targets"] and panel.get("description"), panel["title"]
        ref_ids = [t["refId"] for t in panel["targets"]]
        assert len(ref_ids) == len(set(ref_ids)), panel["title"]
        assert all(t["datasource"] == panel["datasource"] for t in panel["targets"]), panel["title"]


def test_the_metrics_reference_names_what_the_services_expose(page):
    """docs/metrics.md lists every family of the page, and nothing the page lacks."""
    text = (DASHBOARD_PATH.parents[3] / "docs" / "metrics.md").read_text()
    documented = set(re.findall(r"`(flightbase_[a-z_]+)`", text))
    exposed = {re.sub(r"_(bucket|sum|count)$", "", name) for name in page
               if name.startswith("flightbase_") and not name.endswith("_created")}
    assert documented == exposed, (sorted(exposed - documented), sorted(documented - exposed))
