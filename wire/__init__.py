"""What the gateway and the engines share: nothing else is imported across that line.

`router/` (gateway) and `engine/` (scheduler inside vLLM or SGLang) both import this package and
never each other.
"""
