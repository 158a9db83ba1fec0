"""The Grafana dashboard (``deploy/grafana/rayrollout.json``) names only series the package
exports, with labels they carry, and every series it selects is filtered to the chosen model.
The queries themselves run against a real Prometheus in tests/integration/test_dashboard.py."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rayrollout.dataplane import metrics as spec

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "rayrollout.json"

# PromQL's functions and aggregations the dashboard may call (a typo is not one of them).
FUNCTIONS = {"sum", "max", "min", "avg", "count", "rate", "increase", "irate",
             "histogram_quantile", "label_values", "clamp_min", "topk", "abs"}
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and",
            "or", "unless", "offset"}
GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")
SELECTOR = re.compile(r"([a-zA-Z_:][\w:]*)\s*\{([^}]*)\}")
MATCHER = re.compile(r'(\w+)\s*(?:=~|!~|!=|=)\s*"[^"]*"')


def exported() -> dict[str, spec.MetricSpec]:
    """Every series name Prometheus sees from the package, with the spec it comes from."""
    return {name: m for m in spec.ALL for name in spec.exported_series(m)}


def labels_of(name: str) -> set[str]:
    m = exported()[name]
    return set(m.labels) | ({"le"} if name.endswith("_bucket") else set())


def load() -> dict[str, Any]:
    return dict(json.loads(DASHBOARD.read_text()))


def panels(d: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for p in d["panels"]:
        yield p
        yield from p.get("panels", [])


def queries(d: dict[str, Any]) -> list[str]:
    """Every PromQL expression of the dashboard: its panels' and its variables'."""
    out = [t["expr"] for p in panels(d) for t in p.get("targets", [])]
    for v in d["templating"]["list"]:
        if v["type"] == "query":
            out.append(v["definition"])
    return out


def names_in(expr: str) -> tuple[set[str], set[str], set[str]]:
    """(series names, functions called, labels named in grouping clauses) of ``expr``."""
    grouped = {lb.strip() for _, inner in GROUPING.findall(expr) for lb in inner.split(",")}
    bare = GROUPING.sub(" ", expr)
    bare = re.sub(r'"[^"]*"', '""', bare)
    bare = re.sub(r"\{[^}]*\}|\[[^\]]*\]", " ", bare)
    series: set[str] = set()
    calls: set[str] = set()
    for tok in re.finditer(r"\d[\d.]*(?:e[+-]?\d+)?|([a-zA-Z_:][\w:]*)(\s*\()?", bare):
        name, call = tok.group(1), tok.group(2)
        if name is None or name in KEYWORDS:
            continue
        (calls if call else series).add(name)
    if expr.startswith("label_values("):  # label_values(series, label): the label is no series
        _, label = expr[len("label_values("):-1].split(",")
        series.discard(label.strip())
        grouped.add(label.strip())
    return series, calls, grouped - {""}


def test_the_dashboard_is_a_grafana_dashboard_with_datasource_and_model_variables() -> None:
    d = load()
    variables = {v["name"]: v for v in d["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    assert variables["model"]["type"] == "query"
    ids = [p["id"] for p in panels(d)]
    assert len(ids) == len(set(ids))
    for p in panels(d):
        if p["type"] == "row":
            continue
        assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, p["title"]
        assert p["targets"], p["title"]
        assert all(t["datasource"] == p["datasource"] for t in p["targets"]), p["title"]


@pytest.mark.parametrize("expr", queries(load()))
def test_every_series_the_dashboard_names_is_exported_with_its_labels(expr: str) -> None:
    series, calls, grouped = names_in(expr)
    known = exported()
    assert series, f"no series in {expr!r}"
    assert series <= known.keys(), f"{sorted(series - known.keys())} not exported: {expr!r}"
    assert calls <= FUNCTIONS, f"unknown functions {sorted(calls - FUNCTIONS)} in {expr!r}"
    labels = set().union(*(labels_of(s) for s in series))
    assert grouped <= labels, f"labels {sorted(grouped - labels)} on no series of {expr!r}"
    for name, matchers in SELECTOR.findall(expr):
        keys = set(MATCHER.findall(matchers))
        assert keys <= labels_of(name), f"{name} has no labels {sorted(keys - labels_of(name))}"
        assert 'model="$model"' in matchers, f"{name} is not filtered to the model: {expr!r}"
    if not expr.startswith("label_values("):
        assert len(SELECTOR.findall(expr)) == expr.count("ray_rayrollout_"), expr


def test_the_main_series_of_both_exporters_are_on_the_dashboard() -> None:
    used = set().union(*(names_in(q)[0] for q in queries(load())))
    families = {n.removesuffix("_bucket") for n in used}
    for m in spec.ALL:
        assert "ray_" + m.name in families, f"{m.name} is on no panel"


def test_the_checker_itself_catches_a_misspelt_series_or_label() -> None:
    assert names_in('sum(rate(ray_rayrollout_request_total{model="$model"}[5m]))')[0] == {
        "ray_rayrollout_request_total"}  # not exported: the parametrized test would fail
    assert names_in('sum by (verison) (ray_rayrollout_requests_total{model="$model"})')[2] == {
        "verison"}
    assert names_in("histogram_quantile(0.99, sum by (le) (rate(x_bucket[1m])))") == (
        {"x_bucket"}, {"histogram_quantile", "sum", "rate"}, {"le"})
