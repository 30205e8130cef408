"""The dispatcher's per-job record: why a job's task was cancelled, when two reasons race."""

from router.dispatcher import Running, Stop
from router.job import Job
from router.replica import Replica


def _running() -> Running:
    return Running(Job.__new__(Job), Replica("http://127.0.0.1:9"))  # the record reads neither


def test_a_stronger_reason_wins_and_a_weaker_one_does_not_replace_it():
    run = _running()
    assert run.stop is None  # a cancel with no reason is a lost lease
    run.stop_for(Stop.MOVE)
    run.stop_for(Stop.CLIENT)  # a client that left is not re-dispatched
    assert run.stop is Stop.CLIENT
    run.stop_for(Stop.MOVE)
    assert run.stop is Stop.CLIENT
    run.stop_for(Stop.TIMEOUT)  # a timed-out job answers 503 even if its client also left
    run.stop_for(Stop.CLIENT)
    assert run.stop is Stop.TIMEOUT
