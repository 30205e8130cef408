"""`skipjoin predictor-eval`: how well each predictor ranks SmolLM2's answer lengths, and what the
probes cost on a live engine.

Offline part (no model needed): the repo's prompt set with measured lengths and hidden states
(`python -m predictor.dataset`), two splits — 5-fold CV stratified by kind (held-out prompts of
kinds seen in training) and leave-kinds-out (GroupKFold by kind) — metrics averaged over folds.
The hidden-state predictor is scored by nested CV: inner folds of each training fold choose layer,
pooling, model and C (predictor.nested_cv); `--fixed` scores one given setting instead (optimistic
when that setting was itself chosen on this data).
Live part (`--engine-url`): median time to first token with and without each probe.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Sequence

import numpy as np
from rich.console import Console
from rich.table import Table
from sklearn.model_selection import GroupKFold, StratifiedKFold

from predictor.config import PredictorConfig
from predictor.dataset import LAYERS
from predictor.examples import Example, load_prompt_set
from predictor.features import POOLS, FeatureSpec
from predictor.fit import candidate_predictions, fit_models
from predictor.metrics import Scores, kendall, mean_scores, score
from predictor.nested_cv import ORDINAL_CS, grid
from predictor.nested_report import auto_predictions, auto_with, evaluate_nested, inner_splitter

Split = list[tuple[np.ndarray, np.ndarray]]
PREDICTORS = (
    "prompt-length",
    "heuristic",
    "probe-hidden (nested)",
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
    out["auto"], choice = auto_predictions(train, test, spec, config)
    out["auto:choice"] = np.array([choice] * len(test))
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
    return {k: mean_scores(v) for k, v in per_fold.items()}, choices


def results_table(title: str, results: dict[str, dict[str, Scores]]) -> Table:
    table = Table(title=title)
    for col in ("split", "predictor", "τ", "Spearman", "MAE*", "pairs >2×", "|log| p50"):
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
                    f"{s.log_err:.2f}",
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


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def run_nested(
    examples: list[Example], args: argparse.Namespace, config: PredictorConfig, console: Console
) -> None:
    layers = _ints(args.layers) if args.layers else sorted({k for e in examples for k in e.hidden["layers"]})
    has_mean = all(e.hidden.get("mean") is not None for e in examples)
    pools = args.pools.split(",") if args.pools else (list(POOLS) if has_mean else ["last"])
    settings = grid(layers, pools)
    console.print(
        f"nested CV: {args.folds} outer folds report; {args.inner_folds} inner folds of each training "
        f"fold choose among {len(settings)} settings (layers {layers}, pools {pools}, ridge | ordinal C "
        f"{list(ORDINAL_CS)})"
    )
    results, chosen, choices = {}, {}, {}
    for name, split in splits(examples, args.folds).items():
        r = evaluate_nested(
            examples, split, inner_splitter(name, args.inner_folds), settings, auto_with(config)
        )
        results[name], chosen[name], choices[name] = r.scores, r.chosen, r.auto_choices
    console.print(
        results_table("nested CV: predicted vs served output length (mean over outer folds)", results)
    )
    for name in chosen:
        console.print(f"{name}: inner folds chose {chosen[name]}; auto served {choices[name]}")


def run_fixed(
    examples: list[Example], args: argparse.Namespace, config: PredictorConfig, console: Console
) -> None:
    spec = FeatureSpec(args.layer, args.pool)
    results, choices = {}, {}
    for name, split in splits(examples, args.folds).items():
        results[name], choices[name] = evaluate(examples, split, spec, config)
    title = f"fixed setting layer {spec.layer} {spec.pool} (not nested: optimistic if chosen on this data)"
    console.print(results_table(title, results))
    console.print(f"auto chose, per fold: {choices}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="skipjoin predictor-eval",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--folds", type=int, default=5, help="outer folds")
    ap.add_argument("--inner-folds", type=int, default=3)
    ap.add_argument(
        "--layers", default="", help="comma-separated layers to choose among (default: all stored)"
    )
    ap.add_argument(
        "--pools", default="", help="comma-separated poolings to choose among (default: all stored)"
    )
    ap.add_argument("--fixed", action="store_true", help="also score one given setting (--layer, --pool)")
    ap.add_argument("--layer", type=int, default=FeatureSpec().layer)
    ap.add_argument("--pool", default=FeatureSpec().pool)
    ap.add_argument("--sweep", action="store_true", help="also compare layers and poolings (not nested)")
    ap.add_argument("--engine-url", default=None, help="measure the probes' cost on this live engine")
    ap.add_argument("--cost-prompts", type=int, default=20)
    args = ap.parse_args(argv)
    console = Console(width=130)
    examples = [e for e in load_prompt_set() if e.hidden is not None]
    config = PredictorConfig()
    console.print(
        f"{len(examples)} prompts, {len({e.kind for e in examples})} kinds, "
        f"{sum(e.capped for e in examples)} answers ran to the 512-token cap"
    )
    run_nested(examples, args, config, console)
    console.print(
        "MAE*: over answers that stopped before the cap (capped lengths are censored); |log| p50: median "
        "|log(predicted/served)| over those answers; pairs >2×: order accuracy on pairs more than 2× apart."
    )
    if args.fixed:
        run_fixed(examples, args, config, console)
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
