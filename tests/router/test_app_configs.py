"""Settings reach the config field of the same meaning (distinct values, so a swap shows)."""

from router.app import _configs
from router.settings import Settings


def test_each_setting_lands_in_its_own_field():
    settings = Settings(
        engines="http://a:1", aging_rate=3.0, tenant_penalty=0.5, max_queue=77, lease_s=7.0,
        request_timeout_s=123.5, window_min=2, window_max=9, window_headroom=3, role_threshold=300,
        poll_interval_s=0.07, load_poll_s=0.3,
    )
    score, queue, disp, _ = _configs(settings)
    assert (score.aging_rate, score.tenant_penalty) == (3.0, 0.5)
    assert (queue.max_queue, queue.lease_s, queue.result_ttl_s) == (77, 7.0, 123)
    assert (disp.window.window_min, disp.window.window_max, disp.window.headroom) == (2, 9, 3)
    assert (disp.role_threshold, disp.poll_interval_s, disp.load_poll_s) == (300, 0.07, 0.3)
    assert disp.lease_s == 7.0
    assert (disp.result_ttl_s, disp.job_timeout_s) == (123, 123.5)
