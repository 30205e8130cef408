"""The pure parts of the control plane: knob validation, replica sets, labels, breakdowns."""

import pytest

from router.admin_stats import breakdown
from router.control_knobs import from_settings, overlay, validate
from router.control_replicas import ACTIVE, DRAINING, REMOVED, changed, effective, normalize_url
from router.metrics import length_bucket
from router.settings import Settings

BASE = from_settings(Settings(redis_url="redis://x", engines="http://a:1"))


@pytest.mark.parametrize(
    "changes,field",
    [
        ({"aging_rate": -1.0}, "aging_rate"),
        ({"tenant_penalty": -0.1}, "tenant_penalty"),
        ({"class_weights": {"interactive": -1.0}}, "class_weights"),
        ({"class_weights": {"batch": 1.0}}, "class_weights"),  # drops the default class
        ({"window_min": 0}, "window_min"),
        ({"window_min": 4, "window_max": 3}, "window_max"),
        ({"window_headroom": -1}, "window_headroom"),
        ({"tenant_window_s": 0.0}, "tenant_window_s"),
        ({"max_queue": 0}, "max_queue"),
        ({"predictor": "nope"}, "predictor"),
    ],
)
def test_validate_names_the_knob_at_fault(changes, field):
    with pytest.raises(ValueError) as err:
        validate(overlay(BASE, changes), "interactive")
    assert err.value.args[1] == field


def test_overlay_ignores_what_is_not_a_knob():
    assert overlay(BASE, {"aging_rate": 1.0, "port": 1})["aging_rate"] == 1.0
    assert "port" not in overlay(BASE, {"port": 1})
    validate(overlay(BASE, {"class_weights": {"interactive": 2.0, "bulk": 9.0}}), "interactive")


def test_replica_set_overlays_settings_with_admin_changes():
    configured = [("http://a:1", ""), ("http://b:2", "short")]
    doc = changed({}, configured, "http://c:3", "add", "long")
    doc = changed(doc, configured, "http://a:1", "drain")
    doc = changed(doc, configured, "http://b:2", "remove")
    specs = effective(configured, doc)
    assert [(s.url, s.role, s.state) for s in specs] == [
        ("http://a:1", "", DRAINING), ("http://c:3", "long", ACTIVE)]
    assert [s.takes_new for s in specs] == [False, True]
    assert doc["http://b:2"]["state"] == REMOVED
    again = changed(doc, configured, "http://b:2", "add")  # a removed one may come back
    assert [s.url for s in effective(configured, again)] == ["http://a:1", "http://b:2", "http://c:3"]


@pytest.mark.parametrize(
    "url,action,role,message",
    [
        ("http://a:1", "add", None, "already"),
        ("http://z:9", "pause", None, "no replica"),
        ("http://a:1", "explode", None, "action must be"),
        ("http://a:1", "pause", "medium", "role must be"),
    ],
)
def test_replica_changes_that_make_no_sense_are_value_errors(url, action, role, message):
    with pytest.raises(ValueError, match=message):
        changed({}, [("http://a:1", "")], url, action, role)


def test_urls_are_normalized_or_refused():
    assert normalize_url(" http://host:8100/ ") == "http://host:8100"
    with pytest.raises(ValueError):
        normalize_url("host:8100")


def test_length_buckets_and_breakdown():
    assert [length_bucket(x) for x in (0, 63.9, 64, 255, 256, 1023, 1024, 1e6)] == [
        "<64", "<64", "64-256", "64-256", "256-1024", "256-1024", ">=1024", ">=1024"]
    rows = [{"class": "batch", "predicted": 10}, {"class": "interactive", "predicted": 300},
            {"class": "batch", "predicted": 2000}]
    assert breakdown(rows) == {"total": 3, "by_class": {"batch": 2, "interactive": 1},
                               "by_predicted": {"<64": 1, "256-1024": 1, ">=1024": 1}}
