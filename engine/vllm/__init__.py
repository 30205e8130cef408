"""skipjoin's scheduler inside vLLM V1: `--scheduler-cls engine.vllm.scheduler.SkipJoinScheduler`
(CPU, synchronous) or `...SkipJoinAsyncScheduler` (GPU, async scheduling). `skipjoin engine` picks one.

The adapter maps vLLM's `Request`s to the policy's `SeqState`s and applies its `Plan`; every
decision about order, admission, pausing and eviction comes from `engine.policy`.
"""
