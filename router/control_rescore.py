"""Re-scoring what waits in the queue after a score knob changes (class weights, aging, tenant
penalty).

A stored score embeds the aging rate (score.py), so without this a job queued under the old rate
and one queued under the new would compare wrongly until the old ones drained, and a new class
weight would reach only requests admitted after it. The gateway whose admin API took the change
re-stores every queued job's score under the new config, once.
"""

from __future__ import annotations

from router import keys
from router.job import Job
from router.queue import RedisQueue
from router.score import ScoreConfig, stored_score
from router.tenants import TenantUsage

SCORE_KNOBS = ("class_weights", "aging_rate", "tenant_penalty")
CHUNK = 500

# ARGV: id, score, id, score, ... Re-stores the score of each job still queued (a job popped
# meanwhile is left alone: ZADD here would queue it twice).
RESCORE = """
local n = 0
for i = 1, #ARGV, 2 do
  local id, score = ARGV[i], ARGV[i + 1]
  local jk = 'skipjoin:job:' .. id
  local bucket = redis.call('HGET', jk, 'bucket')
  if bucket and redis.call('ZSCORE', 'skipjoin:q:' .. bucket, id) then
    redis.call('ZADD', 'skipjoin:q:' .. bucket, score, id)
    redis.call('HSET', jk, 'score', score)
    n = n + 1
  end
end
return n
"""


async def _score(job: Job, cfg: ScoreConfig, default_class: str, usage: TenantUsage, now: float) -> float:
    weight = cfg.class_weights.get(job.cls, cfg.class_weights[default_class])
    used = await usage.tokens(job.tenant, now) if cfg.tenant_penalty else 0.0
    return stored_score(job.predicted, weight, used, job.enqueued_at, cfg)


async def rescore(queue: RedisQueue, usage: TenantUsage, cfg: ScoreConfig, default_class: str,
                  now: float) -> int:
    """Re-store every queued job's score under `cfg`; returns how many were re-scored."""
    script = queue.r.register_script(RESCORE)
    done = 0
    for q in (keys.queue(b) for b in queue.cfg.buckets):
        ids = await queue.r.zrange(q, 0, -1)
        for start in range(0, len(ids), CHUNK):
            chunk = ids[start:start + CHUNK]
            async with queue.r.pipeline(transaction=False) as pipe:
                for job_id in chunk:
                    pipe.hget(keys.job(job_id.decode()), "payload")
                payloads = await pipe.execute()
            args: list[object] = []
            for job_id, payload in zip(chunk, payloads, strict=True):
                if payload:
                    job = Job.loads(payload)
                    args += [job_id, repr(await _score(job, cfg, default_class, usage, now))]
            if args:
                done += int(await script(keys=[], args=args))
    return done
