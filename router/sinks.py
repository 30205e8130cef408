"""Where a dispatcher delivers a job's events, fenced by its lease.

Only the dispatcher whose id is the job's `owner` (written at pop) may deliver: a dispatcher that
stalled past its lease, lost the job to a reaper and woke up again finds another owner (or no job)
and raises `LeaseLost` instead of writing a second copy of the answer. The first event also marks
the job `started`, so a reaper fails it with an error event rather than running it again.

Same process: one fenced round trip before the first event, then the in-memory mailbox. Another
process: every event goes through a script that checks the owner and appends to the job's stream.
"""

from __future__ import annotations

import logging

import redis.asyncio as redis

from router import keys
from router.events import Event, Inbox, Mailbox
from router.job import Job

log = logging.getLogger("skipjoin.sinks")

# KEYS: job hash.  ARGV: owner.  Marks the job started if `owner` still holds it: 1, else 0.
CLAIM = """
if redis.call('HGET', KEYS[1], 'owner') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'started', '1')
return 1
"""

# KEYS: job hash, result stream.  ARGV: owner, first ('1'/'0'), kind, data, status, ttl, moved
# channel, id.  Appends the event if `owner` still holds the job: 1, else 0. Any append to a stream
# without a TTL sets it: the front deletes a finished request's stream, and a late event would
# otherwise create one that never expires.
SEND = """
if redis.call('HGET', KEYS[1], 'owner') ~= ARGV[1] then return 0 end
redis.call('XADD', KEYS[2], '*', 'k', ARGV[3], 'd', ARGV[4], 's', ARGV[5])
if redis.call('TTL', KEYS[2]) < 0 then redis.call('EXPIRE', KEYS[2], ARGV[6]) end
if ARGV[2] == '1' then
  redis.call('HSET', KEYS[1], 'started', '1')
  redis.call('PUBLISH', ARGV[7], ARGV[8])
end
return 1
"""


class LeaseLost(Exception):
    """This dispatcher no longer holds the job: it must stop (and cancel upstream)."""


class LocalSink:
    """The job's client is held by this process."""

    def __init__(self, claim, job_id: str, owner: str, box: Mailbox):
        self.claim, self.job_id, self.owner, self.box = claim, job_id, owner, box
        self.sent = 0

    async def send(self, ev: Event) -> None:
        if not self.sent:
            try:
                held = await self.claim(keys=[keys.job(self.job_id)], args=[self.owner])
            except (redis.RedisError, OSError) as exc:
                # Redis down: no reaper runs meanwhile; keep streaming (the front never mixes a
                # re-run into text it has already delivered).
                log.warning("claim %s: %s; delivering anyway", self.job_id, exc)
                held = 1
            if not held:
                raise LeaseLost(self.job_id)
        self.box.queue.put_nowait(ev)
        self.sent += 1


class RemoteSink:
    """Writes events to the job's Redis stream; the first one also tells the front to read it."""

    def __init__(self, script, job_id: str, owner: str, front: str, ttl_s: int):
        self.script, self.job_id, self.owner, self.front, self.ttl_s = script, job_id, owner, front, ttl_s
        self.sent = 0  # events possibly written: the dispatcher re-runs a job elsewhere only at 0
        self.written = 0  # events known written

    async def send(self, ev: Event) -> None:
        first = 0 if self.written else 1  # until one is known written: the note and mark are idempotent
        args = [
            self.owner,
            first,
            ev.kind,
            ev.data,
            ev.status,
            self.ttl_s,
            keys.moved(self.front),
            self.job_id,
        ]
        # Counted before the write: cancelled mid-write (an evacuation), the event may be in the
        # stream already, and a re-run elsewhere would send the client its first chunk twice.
        self.sent += 1
        if not await self.script(keys=[keys.job(self.job_id), keys.result(self.job_id)], args=args):
            raise LeaseLost(self.job_id)
        self.written += 1


class Sinks:
    """Builds the sink of each job a dispatcher runs (scripts registered once)."""

    def __init__(self, client: redis.Redis, owner: str, inbox: Inbox, ttl_s: int):
        self.claim = client.register_script(CLAIM)
        self.send = client.register_script(SEND)
        self.owner, self.inbox, self.ttl_s = owner, inbox, ttl_s

    def for_job(self, job: Job) -> LocalSink | RemoteSink:
        box = self.inbox.local(job.id)
        if box is not None:
            return LocalSink(self.claim, job.id, self.owner, box)
        return RemoteSink(self.send, job.id, self.owner, job.front, self.ttl_s)
