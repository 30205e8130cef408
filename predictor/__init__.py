"""skipjoin predictor: output-length prediction before a request runs."""
