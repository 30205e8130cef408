"""skipjoin benchmarks: simulator, live load generator, plots."""
