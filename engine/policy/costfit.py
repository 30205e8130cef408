"""The engine's own prices: step time against batch and context, fitted online.

    step_s ≈ base_s + per_seq_s * decoding requests + per_ctx_s * context tokens
             + prefill_s_per_token * prompt tokens computed in the step

(`bench.costmodel`'s form, which `bench.step_fit` fits offline.) A least-squares fit over recent
steps, older ones decayed, pulled lightly towards the last fit so a run of identical steps
cannot make it singular. Until `min_steps` steps are seen the policy keeps its defaults.
"""

from __future__ import annotations

from engine.policy.plan import CostEstimates

NAMES = ("base_s", "per_seq_s", "per_ctx_s", "prefill_s_per_token")
_SCALE = (1.0, 1.0, 1e3, 1e2)  # features in units that keep the normal equations well conditioned


def _solve(a: list[list[float]], b: list[float]) -> list[float] | None:
    """Gaussian elimination with partial pivoting (4 unknowns)."""
    n = len(b)
    m = [row[:] + [b[i]] for i, row in enumerate(a)]
    for c in range(n):
        p = max(range(c, n), key=lambda r: abs(m[r][c]))
        if abs(m[p][c]) < 1e-12:
            return None
        m[c], m[p] = m[p], m[c]
        for r in range(c + 1, n):
            f = m[r][c] / m[c][c]
            for k in range(c, n + 1):
                m[r][k] -= f * m[c][k]
    x = [0.0] * n
    for r in range(n - 1, -1, -1):
        x[r] = (m[r][n] - sum(m[r][k] * x[k] for k in range(r + 1, n))) / m[r][r]
    return x


class StepCostFit:
    def __init__(self, decay: float = 0.995, min_steps: int = 32, ridge: float = 1e-3):
        self.decay, self.min_steps, self.ridge = decay, min_steps, ridge
        self.a = [[0.0] * 4 for _ in range(4)]
        self.b = [0.0] * 4
        self.steps = 0
        self.coef: list[float] | None = None  # in NAMES' order, seconds per unit

    def observe(self, seconds: float, seqs: int, ctx_tokens: int, prefill_tokens: int) -> None:
        x = [1.0, seqs / _SCALE[1], ctx_tokens / _SCALE[2], prefill_tokens / _SCALE[3]]
        for i in range(4):
            self.b[i] = self.decay * self.b[i] + x[i] * seconds
            for j in range(4):
                self.a[i][j] = self.decay * self.a[i][j] + x[i] * x[j]
        self.steps += 1
        if self.steps >= self.min_steps and self.steps % 8 == 0:
            self._refit()

    def _refit(self) -> None:
        prior = [c * s for c, s in zip(self.coef, _SCALE, strict=True)] if self.coef else [0.0] * 4
        weight = self.ridge * max(self.a[0][0], 1.0)
        a = [[self.a[i][j] + (weight if i == j else 0.0) for j in range(4)] for i in range(4)]
        b = [self.b[i] + weight * prior[i] for i in range(4)]
        x = _solve(a, b)
        if x is not None:
            self.coef = [max(v, 0.0) / s for v, s in zip(x, _SCALE, strict=True)]

    def step_s(self, seqs: int, ctx_tokens: int, prefill_tokens: int = 0) -> float | None:
        if self.coef is None:
            return None
        base, per_seq, per_ctx, per_prefill = self.coef
        return base + per_seq * seqs + per_ctx * ctx_tokens + per_prefill * prefill_tokens

    def apply(self, costs: CostEstimates, seqs: int, ctx_tokens: int) -> None:
        """Prices for the batch now running: its decode step, a token of it, a prompt token."""
        step = self.step_s(max(seqs, 1), ctx_tokens)
        if step is None or step <= 0:
            return
        costs.step_s = step
        costs.decode_s_per_token = step / max(seqs, 1)
        if self.coef[3] > 0:
            costs.prefill_s_per_token = self.coef[3]

    def prices(self) -> dict:
        """What /stats shows: the fitted coefficients (None until fitted) and the steps seen."""
        coef = dict(zip(NAMES, self.coef, strict=True)) if self.coef else None
        return {"steps": self.steps, "fit": coef and {k: float(f"{v:.4g}") for k, v in coef.items()}}
