"""`python -m predictor.seed`: fit the model shipped in `predictor/data/initial_model.json`.

Fitted on the whole repo prompt set (SmolLM2's measured lengths); its candidate scores are the
5-fold cross-validated Kendall's tau, so `auto` starts with the predictor that ranks best there.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from predictor.bundle import ModelBundle
from predictor.config import PredictorConfig
from predictor.evaluate import evaluate, splits
from predictor.examples import Example, load_prompt_set
from predictor.features import FeatureSpec
from predictor.fit import fit_models
from predictor.store import SEED_MODEL

_CANDIDATES = {
    "heuristic": "heuristic",
    "probe-hidden:ridge": "ridge",
    "probe-hidden:ordinal": "ordinal",
    "probe-text": "guess",
}


def build_seed(examples: list[Example], spec: FeatureSpec, config: PredictorConfig) -> ModelBundle:
    cv, _ = evaluate(examples, splits(examples, 5)["seen kinds"], spec, config)
    bundle = fit_models(examples, spec)
    bundle.scores = {short: cv[name].kendall for name, short in _CANDIDATES.items() if name in cv}
    eligible = {
        k: v
        for k, v in bundle.scores.items()
        if k != "guess" or bundle.guess_usable(config.question_min_parse_rate, config.question_min_kendall)
    }
    bundle.choice = max(eligible, key=eligible.get)
    return bundle


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m predictor.seed", description=__doc__)
    ap.add_argument("--out", type=Path, default=SEED_MODEL)
    ap.add_argument("--layer", type=int, default=FeatureSpec().layer)
    ap.add_argument("--pool", default=FeatureSpec().pool)
    args = ap.parse_args(argv)
    bundle = build_seed(load_prompt_set(), FeatureSpec(args.layer, args.pool), PredictorConfig())
    args.out.write_text(bundle.to_json())
    size_kb = args.out.stat().st_size // 1024
    print(f"wrote {args.out} ({size_kb} kB): choice={bundle.choice} scores={bundle.scores}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
