"""The metric registry: what it holds, and that a metric registered as one class reaches every table."""

import csv
import io
import json

import numpy as np
import pytest

import onnxai
from onnxai import metrics
from onnxai.report import Report, metrics_table
import onnx_models
from region_case import REGION, SIZE


def test_registry_holds_the_six_metrics_with_their_directions():
    assert {k: m.direction for k, m in metrics.REGISTRY.items()} == {
        "deletion": "lower", "insertion": "higher", "ad": "lower", "ic": "higher", "ad50": "lower", "ic50": "higher"}
    for name, m in metrics.REGISTRY.items():
        assert isinstance(m, metrics.Metric) and m.name == name
        assert m.description and "\n" not in m.description and len(m.description) < 120
    assert isinstance(metrics.REGISTRY["deletion"], metrics.CurveMetric)
    assert [c.name for c in metrics.curve_metrics()] == ["deletion", "insertion"]
    # seconds is a column of every table, but no metric: it is not scored from the map
    assert "seconds" not in metrics.REGISTRY and not isinstance(metrics.SECONDS, metrics.Metric)
    assert metrics.columns() == [*metrics.REGISTRY.values(), metrics.SECONDS]
    assert metrics.METRICS == ("deletion", "insertion", "ad", "ic", "ad50", "ic50", "seconds")
    assert metrics.BETTER == {**{k: m.direction for k, m in metrics.REGISTRY.items()}, "seconds": "lower"}


def test_register_refuses_a_taken_name_a_bad_direction_and_non_metrics():
    class Again(metrics.Metric):
        name = "deletion"

    class Sideways(metrics.Metric):
        name, direction = "sideways", "left"

    for cls in (Again, Sideways, dict):
        with pytest.raises(onnxai.InputError):
            metrics.register(cls)
    assert "sideways" not in metrics.REGISTRY


@pytest.fixture
def map_peak():
    """A seventh metric, written as one class: the largest value of the map fitted to the crop."""

    @metrics.register
    class MapPeak(metrics.Metric):
        name, direction, heading, report_heading, digits = "peak", "higher", "map peak", "peak of map", 4
        description = "peak: the largest value of the map (a test metric)"

        def score(self, sample):
            h, w = sample.picture.crop.shape[:2]
            return float(metrics.fit_map(sample.map, h, w).max())

    yield MapPeak
    del metrics.REGISTRY["peak"]


def test_a_metric_registered_as_one_class_reaches_every_table(map_peak, region_model):
    model, _ = region_model
    pics = [onnx_models.region_picture(SIZE, REGION, seed=s) for s in range(2)]
    ev = metrics.evaluate(model, pics, {"occlusion": onnxai.Occlusion(window=4, stride=2)}, step=64)
    maps = {(e.method, e.source): float(np.max(e.map)) for e in ev.explanations}
    for s in ev.scores:
        assert s.peak == pytest.approx(maps[(s.method, s.image)])  # scored on every map
    assert metrics.METRICS[-2:] == ("peak", "seconds") and metrics.BETTER["peak"] == "higher"
    # the text table: its heading with the direction's arrow, the value with the metric's digits
    head, _, *rows = ev.table().splitlines()
    assert "map peak ↑" in head and head.index("IC50 ↑") < head.index("map peak ↑") < head.index("s/image")
    mean = ev.summary()["occlusion"]["peak"][0]
    assert f"{mean:.4f} ±" in rows[0]
    # CSV and JSON
    table = list(csv.DictReader(io.StringIO(ev.to_csv())))
    assert list(table[0])[-2:] == ["peak", "seconds"]
    assert float(table[0]["peak"]) == pytest.approx(ev.scores[0].peak)
    data = json.loads(json.dumps(ev.to_json()))
    assert data["better"]["peak"] == "higher" and data["summary"]["occlusion"]["peak"]["mean"] == pytest.approx(mean)
    assert data["scores"][0]["peak"] == pytest.approx(ev.scores[0].peak) and "peak_curve" not in data["scores"][0]
    # the report: the evaluation summary and the per-picture table, with the description as a tooltip
    rep = Report("r")
    rep.add_evaluation(ev)
    assert "peak of map ↑" in rep.html() and 'title="peak: the largest value of the map (a test metric)"' in rep.html()
    scores = [s for s in ev.scores if s.image == "<array 0>"]
    html = metrics_table(scores)
    assert "map peak ↑" in html and "s/image" not in html
    best = max(s.peak for s in scores)
    assert f'<span class="best">{best:.4f}</span>' in html  # higher is better: the largest value is bold
