"""What the gateway and the engines share: the messages and argument names that cross between them.

`router/` (gateway) and `engine/` (scheduler inside vLLM or SGLang) both import this package. The
engine never imports the gateway; the gateway imports only the engine's pure config checks
(`engine.policy.config` to validate live knobs, `engine.vllm.settings` to name its env variables).
"""
