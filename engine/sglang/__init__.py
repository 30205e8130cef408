"""skipjoin's policy inside SGLang through its official plugin hooks (no fork, no copied file).

`plugin.register` is the `sglang.srt.plugins` entry point, run inside SGLang's scheduler process;
`launch.main` starts SGLang with the flags the hooks rely on. Every decision is `engine.policy`'s:
the hooks only map SGLang's requests to `SeqState`s and apply the policy's plan.
"""
