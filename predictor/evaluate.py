"""`skipjoin predictor-eval`: how well each predictor ranks SmolLM2's answer lengths, and what the
probes cost on a live engine.

Offline part (no model needed): the repo's prompt set with measured lengths and hidden states
(`python -m predictor.dataset`), two splits — 5-fold CV stratified by kind (held-out prompts of
kinds seen in training) and leave-kinds-out (GroupKFold by kind) — metrics averaged over folds.
Live part (`--engine-url`): median time to first token with and without each probe.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Callable, Sequence

import numpy as np
from rich.console import Console
from rich.table import Table
from sklearn.model_selection import GroupKFold, StratifiedKFold

from predictor.config import PredictorConfig
from predictor.dataset import LAYERS
from predictor.examples import Example, load_prompt_set
from predictor.features import FeatureSpec
from predictor.fit import candidate_predictions, fit_and_rank, fit_models
from predictor.metrics import Scores, kendall, score

Split = list[tuple[np.ndarray, np.ndarray]]
PREDICTORS = (
    "prompt-length",
    "heuristic",
    "probe-hidden:ridge",
    "probe-hidden:ordinal",
    "probe-text",
    "auto",
)


def splits(examples: Sequence[Example], folds: int, seed: int = 0) -> dict[str, Split]:
    kinds = np.array([e.kind for e in examples])
    idx = np.zeros(len(examples))
    seen = StratifiedKFold(folds, shuffle=True, random_state=seed).split(idx, kinds)
    unseen = GroupKFold(folds).split(idx, groups=kinds)
    return {"seen kinds": list(seen), "unseen kinds": list(unseen)}


def fold_predictions(
    train: list[Example], test: list[Example], spec: FeatureSpec, config: PredictorConfig
) -> dict[str, np.ndarray]:
    bundle = fit_models(train, spec)
    preds = candidate_predictions(bundle, test)
    out = {
        "prompt-length": np.array([e.prompt_tokens or 0 for e in test], float),
        "heuristic": preds["heuristic"],
    }
    for kind in ("ridge", "ordinal"):
        if kind in preds:
            out[f"probe-hidden:{kind}"] = preds[kind]
    if "guess" in preds:
        out["probe-text"] = preds["guess"]
    # auto chooses on an inner held-out quarter of the training fold, as the trainer does live.
    rng = np.random.default_rng(0)
    order = rng.permutation(len(train))
    cut = int(len(train) * 0.75)
    auto = fit_and_rank(
        [train[i] for i in order[:cut]],
        [train[i] for i in order[cut:]],
        spec,
        config.question_min_parse_rate,
        config.question_min_kendall,
    )
    out["auto"] = candidate_predictions(auto, test)[auto.choice]
    out["auto:choice"] = np.array([auto.choice] * len(test))
    return out


def evaluate(
    examples: list[Example], split: Split, spec: FeatureSpec, config: PredictorConfig
) -> tuple[dict[str, Scores], dict[str, int]]:
    per_fold: dict[str, list[Scores]] = {}
    choices: dict[str, int] = {}
    for train_idx, test_idx in split:
        test = [examples[i] for i in test_idx]
        preds = fold_predictions([examples[i] for i in train_idx], test, spec, config)
        actual = np.array([e.output_tokens for e in test], float)
        capped = np.array([e.capped for e in test], bool)
        choice = str(preds.pop("auto:choice")[0])
        choices[choice] = choices.get(choice, 0) + 1
        for name, p in preds.items():
            per_fold.setdefault(name, []).append(score(p, actual, capped))
    return {k: _mean(v) for k, v in per_fold.items()}, choices


def _mean(scores: list[Scores]) -> Scores:
    def avg(f: Callable[[Scores], float]) -> float:
        return float(np.nanmean([f(s) for s in scores]))

    return Scores(
        avg(lambda s: s.kendall),
        avg(lambda s: s.spearman),
        avg(lambda s: s.mae),
        avg(lambda s: s.pair_acc),
        sum(s.n for s in scores),
    )


def results_table(title: str, results: dict[str, dict[str, Scores]]) -> Table:
    table = Table(title=title)
    for col in ("split", "predictor", "τ", "Spearman", "MAE*", "pairs >2×"):
        table.add_column(col, justify="left" if col in ("split", "predictor") else "right")
    for split_name, r in results.items():
        for name in PREDICTORS:
            if name in r:
                s = r[name]
                table.add_row(
                    split_name,
                    name,
                    f"{s.kendall:.3f}",
                    f"{s.spearman:.3f}",
                    f"{s.mae:.0f}",
                    f"{s.pair_acc:.3f}",
                )
        table.add_section()
    return table


def sweep(examples: list[Example], split: Split, layers: Sequence[int], console: Console) -> None:
    """Ridge τ per layer and pooling (which feature the default should use)."""
    table = Table(title="ridge τ by layer and pooling (seen kinds)")
    table.add_column("layer")
    for pool in ("last", "mean", "last+mean"):
        table.add_column(pool, justify="right")
    for layer in layers:
        row = []
        for pool in ("last", "mean", "last+mean"):
            r, _ = evaluate(examples, split, FeatureSpec(layer, pool), PredictorConfig())
            row.append(f"{r['probe-hidden:ridge'].kendall:.3f}")
        table.add_row(str(layer), *row)
    console.print(table)


def guess_summary(examples: list[Example]) -> str:
    """The question probe's raw answers: how often they parse, and how they rank where they do."""
    asked = [e for e in examples if e.asked]
    if not asked:
        return "question probe: no answers recorded (python -m predictor.dataset --guesses)"
    parsed = [e for e in asked if e.guess is not None]
    tau = kendall(np.array([e.guess for e in parsed]), np.array([e.output_tokens for e in parsed]))
    distinct = len({e.guess for e in parsed})
    return (
        f"question probe: {len(parsed)}/{len(asked)} answers parsed ({len(parsed) / len(asked):.0%}), "
        f"{distinct} distinct values, raw τ on the parsed ones {tau:.3f}; probe-text falls back to the "
        "heuristic where the guess is missing"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="skipjoin predictor-eval",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--layer", type=int, default=FeatureSpec().layer)
    ap.add_argument("--pool", default=FeatureSpec().pool)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--sweep", action="store_true", help="also compare layers and poolings")
    ap.add_argument("--engine-url", default=None, help="measure the probes' cost on this live engine")
    ap.add_argument("--cost-prompts", type=int, default=20)
    args = ap.parse_args(argv)
    console = Console(width=120)
    examples = [e for e in load_prompt_set() if e.hidden is not None]
    spec, config = FeatureSpec(args.layer, args.pool), PredictorConfig()
    capped = sum(e.capped for e in examples)
    console.print(
        f"{len(examples)} prompts, {len({e.kind for e in examples})} kinds, "
        f"{capped} answers ran to the 512-token cap; feature: layer {spec.layer}, {spec.pool}"
    )
    results, choices = {}, {}
    for name, split in splits(examples, args.folds).items():
        results[name], choices[name] = evaluate(examples, split, spec, config)
    console.print(results_table("predicted vs actual output length (mean over folds)", results))
    console.print(
        "MAE*: over answers that stopped before the cap (capped lengths are censored). "
        f"auto chose, per fold: {choices}"
    )
    console.print(guess_summary(examples))
    if args.sweep:
        sweep(examples, splits(examples, args.folds)["seen kinds"], LAYERS, console)
    if args.engine_url:
        from predictor.probe_cost import cost_table, measure_cost

        rows = [e for e in examples][:: max(1, len(examples) // args.cost_prompts)][: args.cost_prompts]
        console.print(cost_table(asyncio.run(measure_cost(args.engine_url, [e.id for e in rows], config))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
