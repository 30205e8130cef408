"""Pure policy functions: queue score, replica choice, window size, load parsing, callers."""

import random

import pytest

from router.auth import Caller, parse_api_keys, resolve_caller
from router.engine_load import load_from_json, load_from_metrics
from router.errors import ApiError
from router.placement import ReplicaState, RequestInfo, bucket_of, buckets_for_role, choose_replica
from router.score import ScoreConfig, live_from_stored, parse_class_weights, score, stored_score
from router.window import EngineLoad, WindowConfig, window_size

CFG = ScoreConfig(aging_rate=10.0, tenant_penalty=0.05, class_weights={"interactive": 1.0, "batch": 4.0})


def test_stored_score_orders_like_live_score_at_any_time():
    rng = random.Random(7)
    jobs = [
        (rng.uniform(1, 2000), rng.choice([1.0, 4.0]), rng.uniform(0, 5e4), rng.uniform(0, 300))
        for _ in range(200)
    ]
    stored = [stored_score(p, w, u, t, CFG) for p, w, u, t in jobs]
    for now in (300.0, 1000.0, 1e6):
        live = [score(p, w, u, t, now, CFG) for p, w, u, t in jobs]
        assert sorted(range(len(jobs)), key=stored.__getitem__) == sorted(
            range(len(jobs)), key=live.__getitem__
        )
        for s, v in zip(stored, live, strict=True):
            assert live_from_stored(s, now, CFG) == pytest.approx(v, abs=1e-6)


def test_old_long_request_overtakes_new_short_once_credit_exceeds_gap():
    long_old = stored_score(500, 1.0, 0, enqueued_at=0.0, cfg=CFG)
    assert stored_score(50, 1.0, 0, enqueued_at=10.0, cfg=CFG) < long_old  # credit 100 < gap 450
    assert stored_score(50, 1.0, 0, enqueued_at=46.0, cfg=CFG) > long_old  # credit 460 > gap 450


def test_class_weight_and_tenant_usage_push_back():
    assert score(100, 4.0, 0, 0, 0, CFG) > score(100, 1.0, 0, 0, 0, CFG)
    assert score(100, 1.0, 10_000, 0, 0, CFG) > score(100, 1.0, 0, 0, 0, CFG)


@pytest.mark.parametrize(
    "kwargs",
    [dict(aging_rate=-1), dict(tenant_penalty=-1), dict(class_weights={}), dict(class_weights={"a": 0.0})],
)
def test_score_config_rejects_bad_values(kwargs):
    with pytest.raises(ValueError):
        ScoreConfig(**kwargs)


def test_parse_class_weights():
    assert parse_class_weights("interactive:1, batch:4.5") == {"interactive": 1.0, "batch": 4.5}
    with pytest.raises(ValueError):
        parse_class_weights("nocolon")


def r(inflight=0, window=4, busy=0.0, role="", has_prefix=False, healthy=True):
    return ReplicaState(inflight, window, busy, role, has_prefix, healthy)


def test_least_loaded_replica_wins():
    assert choose_replica([r(busy=0.5), r(busy=0.2), r(busy=0.9)], RequestInfo(10, 256)) == 1


def test_prefix_affinity_when_load_allows():
    req = RequestInfo(10, 256)
    assert choose_replica([r(busy=0.2), r(busy=0.3, has_prefix=True)], req) == 1
    assert choose_replica([r(busy=0.1), r(busy=0.9, has_prefix=True)], req) == 0


def test_full_replicas_and_roles():
    assert choose_replica([r(inflight=4), r(inflight=4)], RequestInfo(10, 256)) is None
    short_long = [r(role="short"), r(role="long")]
    assert choose_replica(short_long, RequestInfo(10, 256)) == 0
    assert choose_replica(short_long, RequestInfo(900, 256)) == 1
    assert choose_replica([r(role="short", busy=0.0), r(busy=0.5)], RequestInfo(900, 256)) == 1
    assert choose_replica([r(healthy=False), r(busy=0.9)], RequestInfo(10, 256)) == 1


def test_buckets():
    assert buckets_for_role("", False) == ("all",)
    assert buckets_for_role("", True) == ("short", "long")
    assert buckets_for_role("long", True) == ("long",)
    assert bucket_of(10, 256, True) == "short" and bucket_of(300, 256, True) == "long"
    assert bucket_of(300, 256, False) == "all"


def test_window_never_holds_back_below_saturation():
    cfg = WindowConfig(window_min=1, window_max=64, headroom=1)
    assert window_size(EngineLoad(running=2, waiting=0, max_batch=16), 2, cfg) == 17
    # Others (probes, foreign clients) use 6 slots: our window shrinks by that much.
    assert window_size(EngineLoad(running=8, waiting=0, max_batch=16), 2, cfg) == 11
    assert window_size(None, 0, cfg) == 64
    assert window_size(EngineLoad(100, 100, 16), 0, cfg) == 1
    assert window_size(EngineLoad(300, 0, 512), 300, cfg) == 64
    # Unknown max_batch (vLLM gauges): an engine queue means saturation.
    assert window_size(EngineLoad(10, 0, None), 10, cfg) == 64
    assert window_size(EngineLoad(10, 4, None), 14, cfg) == 11
    with pytest.raises(ValueError):
        WindowConfig(window_min=0)
    with pytest.raises(ValueError):
        WindowConfig(window_min=4, window_max=2)


def test_engine_load_parsing():
    assert load_from_json({"running": 3, "waiting": 1, "max_batch": 8}) == EngineLoad(3, 1, 8)
    assert load_from_json({"nope": 1}) is None
    vllm = (
        '# HELP vllm:num_requests_running x\nvllm:num_requests_running{model_name="m"} 4.0\n'
        'vllm:num_requests_waiting{model_name="m"} 2.0\n'
    )
    assert load_from_metrics(vllm) == EngineLoad(4, 2, None)
    sglang = 'sglang:num_running_reqs{tp_rank="0"} 7\nsglang:num_queue_reqs{tp_rank="0"} 1\n'
    assert load_from_metrics(sglang) == EngineLoad(7, 1, None)
    assert load_from_metrics("other_metric 1\n") is None


def test_callers_from_keys_and_headers():
    keys = parse_api_keys("k1:acme:interactive,k2:bulk:batch")
    weights = {"interactive": 1.0, "batch": 4.0}
    assert resolve_caller(keys, weights, "interactive", "Bearer k2", None, None, None) == Caller(
        "bulk", "batch"
    )
    # The header may lower a key's class, never raise it.
    assert resolve_caller(keys, weights, "interactive", "Bearer k1", "batch", None, None).cls == "batch"
    assert resolve_caller(keys, weights, "interactive", "Bearer k2", "interactive", None, None).cls == "batch"
    with pytest.raises(ApiError) as e:
        resolve_caller(keys, weights, "interactive", "Bearer nope", None, None, None)
    assert e.value.status == 401
    assert resolve_caller({}, weights, "interactive", None, "batch", "t1", None) == Caller("t1", "batch")
    with pytest.raises(ApiError):
        resolve_caller({}, weights, "interactive", None, "vip", None, None)
    with pytest.raises(ValueError):
        parse_api_keys("k1:acme")
