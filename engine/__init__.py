"""skipjoin engine: the MLFQ policy and its adapters into real engines."""
