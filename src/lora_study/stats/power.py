"""What a paired comparison could have detected: the minimum detectable effect (MDE) at 80%
power and the number of examples that would detect the effect that matters.

The workflow decides a paired comparison with a sign-flip permutation p and a studentised
bootstrap interval that is never narrower than Student's t (stats.paired_comparison), and,
with several seeds, also with Welch's t on the per-seed means. Its power is modelled as that
of the paired t test on the per-example differences (noncentral t with n - 1 degrees of
freedom, computed exactly by numerical integration) and, with several seeds, times the power
of the seed level's Welch t (simulated, as its degrees of freedom are estimated): both must
reject, and both rejections rise with the estimate they share, so the product errs low.
tests/test_power.py checks the model against the workflow's own decision by simulation on
skewed, tied ROUGE-like data; docs/STATISTICS.md gives the figures for other shapes.

docs/STATISTICS.md, "What the run could have detected", explains the choices: the alpha
(alpha / m in a Holm family of m, alpha in a lone primary question), how the seed level
enters, and what the numbers do not say.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import lru_cache

import numpy as np

from lora_study.stats.distributions import normal_cdf, normal_quantile, t_quantile

POWER = 0.8  # the power at which the detectable effect is given
MAX_EXAMPLES = 10_000_000  # needed examples are searched up to this; beyond it: "more than"
_GRID = 801  # points of the integral over the chi-square of the standard deviation (401 give 1e-12)


@dataclass(frozen=True)
class SeedSpread:
    """The seed level of a comparison: each side's number of seeds and standard deviation of its
    per-seed means (a side with one seed contributes no variance, as in stats.seed_level_test)."""

    seeds_a: int
    sd_a: float
    seeds_b: int
    sd_b: float

    @property
    def measured(self) -> bool:
        """Whether the seed level tests anything: several seeds on a side, with some spread (a
        seed level without spread gives a real difference p = 0, so it never stops one)."""
        return any(k > 1 and sd > 0 for k, sd in ((self.seeds_a, self.sd_a), (self.seeds_b, self.sd_b)))


def t_test_power(*, noncentrality: float, df: float, alpha: float) -> float:
    """Power of the two-sided t test at level `alpha` with `df` degrees of freedom when the
    statistic is noncentral t with `noncentrality` (the true difference over its true standard
    error): P(|T'| > t_(1 - alpha/2, df)), both tails.

    T' = (Z + delta) / sqrt(V / df), V chi-square with df degrees of freedom, so the power is
    E_V[Phi(delta - c sqrt(V / df)) + Phi(-delta - c sqrt(V / df))]; the expectation is a sum
    over a grid of log V around its mode, weighted by the density and normalised by the sum of
    the weights, accurate to ~1e-7 for any df > 0 (tests: R's power.t.test values)."""
    if df <= 0:
        raise ValueError(f"degrees of freedom must be positive, got {df}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    critical = t_quantile(1 - alpha / 2, df=df)
    # y = log(V / df); the log density relative to the mode y = 0 is -(df/2)(e^y - 1 - y).
    # The range leaves out tails below e^-30 of the mode (the left tail is long at small df).
    y = np.linspace(-(60 / df + 12 / math.sqrt(df)), 12 / math.sqrt(df), _GRID)
    weights = np.exp(-(df / 2) * (np.expm1(y) - y))
    scale = critical * np.exp(y / 2)  # c sqrt(V / df)
    delta = abs(noncentrality)
    tails = normal_cdf(delta - scale) + normal_cdf(-delta - scale)
    return float(min(1.0, np.sum(weights * tails) / np.sum(weights)))


def seed_level_power(
    spread: SeedSpread, *, alpha: float, draws: int = 20_000, seed: int = 0
) -> Callable[[float], float]:
    """The power of the seed level's Welch t (stats.seed_level_test) against a true difference,
    as a function of that difference, by simulation: per-seed means normal with the observed
    standard deviations, the test run as the workflow runs it, with its degrees of freedom
    estimated from each draw. The analytic noncentral t with the observed degrees of freedom
    would overstate it: with 3 against 3 seeds the estimated degrees of freedom often fall well
    below 4 (simulated 70% where that formula says 80%). The draws are fixed (`seed`), so the
    function is deterministic and smooth enough to solve."""
    rng = np.random.default_rng(seed)
    noise, variance, parts = np.zeros(draws), np.zeros(draws), []
    for sign, k, sd in ((-1.0, spread.seeds_a, spread.sd_a), (1.0, spread.seeds_b, spread.sd_b)):
        if k < 2:
            continue  # one seed: its seed variation is not measured (and not tested)
        z = sd * rng.standard_normal((draws, k))
        part = z.var(axis=1, ddof=1) / k
        noise += sign * z.mean(axis=1)
        variance += part
        parts.append((part, k - 1))
    if not parts or not spread.measured:
        return lambda difference: 1.0
    se = np.sqrt(variance)
    with np.errstate(divide="ignore", invalid="ignore"):
        df = variance**2 / sum(part**2 / k for part, k in parts)
    low, high = min(k for _, k in parts), sum(k for _, k in parts)
    df = np.clip(np.nan_to_num(df, nan=high), low, high)
    critical = _t_critical(alpha=alpha, low=low, high=high)(df)

    def power(difference: float) -> float:
        return float(np.mean(np.abs(difference + noise) > critical * se))

    return power


@lru_cache(maxsize=64)
def _t_critical(*, alpha: float, low: float, high: float) -> Callable[[np.ndarray], np.ndarray]:
    """t_(1 - alpha/2, df) for df in [low, high], interpolated in 1 / df (smooth there) from 33
    exact quantiles: Welch's degrees of freedom vary per draw, and the quantile is slow."""
    inverse = np.linspace(1 / high, 1 / low, 33 if high > low else 1)
    quantiles = np.array([t_quantile(1 - alpha / 2, df=1 / x) for x in inverse])
    return lambda df: np.interp(1 / np.asarray(df, dtype=float), inverse, quantiles)


def example_level_power(*, difference: float, sd: float, examples: int, alpha: float) -> float:
    """The paired t test's power over `examples` per-example differences with standard deviation `sd`."""
    return t_test_power(noncentrality=difference * math.sqrt(examples) / sd, df=examples - 1, alpha=alpha)


def detectable_difference(
    *,
    sd: float,
    examples: int,
    alpha: float,
    power: float = POWER,
    seed_power: Callable[[float], float] | None = None,
) -> float:
    """The smallest difference (in the metric's units) called at `alpha` with probability
    `power`: the example level's paired t power, times the seed level's (`seed_level_power`)
    where there is one, solved for the difference by bisection (both rise with it). Needs
    sd > 0 and at least 2 examples (`detectable` handles the rest)."""
    if sd <= 0 or examples < 2:
        raise ValueError("a detectable difference needs a positive spread and at least 2 examples")

    def reaches(difference: float) -> bool:
        seed = seed_power(difference) if seed_power else 1.0
        return example_level_power(difference=difference, sd=sd, examples=examples, alpha=alpha) * seed >= power

    high = sd / math.sqrt(examples)
    while not reaches(high):
        high *= 2
    low = 0.0
    while high - low > 1e-7 * high:
        middle = (low + high) / 2
        low, high = (low, middle) if reaches(middle) else (middle, high)
    return high


def examples_needed(
    *,
    sd: float,
    effect: float,
    alpha: float,
    power: float = POWER,
    seed_power: Callable[[float], float] | None = None,
    cap: int = MAX_EXAMPLES,
) -> int | None:
    """The smallest number of examples at which `effect` is called with probability `power`,
    the spread per example and the seed level held at the observed ones (the seed level's
    spread would in fact shrink a little with more examples, so this errs high). None: more
    than `cap`, or never by examples alone (the seed level cannot reach the power)."""
    if sd <= 0 or effect <= 0:
        raise ValueError("examples_needed needs a positive spread and effect")
    seed = seed_power(effect) if seed_power else 1.0
    if seed < power:
        return None
    target = power / seed

    def reaches(n: int) -> bool:
        return n >= 2 and example_level_power(difference=effect, sd=sd, examples=n, alpha=alpha) >= target

    # The normal approximation (z_(1-alpha/2) + z_target)^2 (sd / effect)^2 is a lower bound on
    # the t test's n: start below it, then double and bisect (power rises with n).
    z = float(normal_quantile(1 - alpha / 2) + normal_quantile(min(target, 1 - 1e-12)))
    low = max(1, math.floor((z * sd / effect) ** 2) - 1)
    if low >= cap:
        return None
    high = low + 1
    while not reaches(high):
        if high >= cap:
            return None
        low, high = high, min(cap, 2 * high)
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (low, middle) if reaches(middle) else (middle, high)
    return high


@dataclass(frozen=True)
class Detectable:
    """What one comparison could have detected, as comparisons.json records it."""

    power: float
    alpha: float  # the two-sided level the detectable effect is computed at
    alpha_rule: str  # why that level (Holm's first step in a family, or the lone primary question)
    examples: int
    spread: float  # sd of the per-example differences (of the seed-averaged scores)
    seeds: list[int]  # seeds of a and b; the seed level enters with several on a side
    seed_spread: list[float]  # sd of the per-seed means of a and b (0 with one seed)
    mde: float | None  # the detectable effect; None: undefined (`text` says why)
    effect: float  # the effect that matters for the question, in the metric's units
    effect_source: str  # the config key that sets it
    adequate: bool | None  # mde <= effect; None where the mde is undefined
    needed_examples: int | None  # to detect `effect` at this alpha and power; None: `needed_note` says why
    needed_note: str | None  # why no number, or that it exceeds the evaluation split; None: nothing to add
    available_examples: int | None  # the evaluation split's size, where known
    text: str  # the sentence a "not supported" (or "not shown") carries
    formula: str

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


FORMULA = (
    "power of the paired t test on the per-example differences (noncentral t, n - 1 df, two-sided, exact) "
    "times, with several seeds on a side, the simulated power of the seed level's Welch t on per-seed means "
    "(normal per-seed means with the observed spreads, Welch df estimated per draw); detectable effect: the "
    "difference at which that power is the stated power; needed examples: the smallest n at which it reaches "
    "that power for the effect that matters, spreads held at the observed ones"
)


def detectable(
    *,
    differences_sd: float,
    examples: int,
    alpha: float,
    alpha_rule: str,
    effect: float,
    effect_source: str,
    seed_spread: SeedSpread,
    available_examples: int | None = None,
    margin: bool = False,
    power: float = POWER,
    seed: int = 0,
) -> Detectable:
    """The detectable effect and the examples needed for `effect`, with the sentence that says
    which of the two a "not supported" is: a run that would have detected `effect`, or one that
    could not. `margin`: the question is Study 4's non-inferiority (is b within `effect` of a),
    and the detectable effect the smallest margin the run would show, with `power`, were the
    two equal (the interval's upper end below the margin: one-sided at alpha / 2). Degenerate
    cases get explicit values and words, never a division by zero: fewer than 2 examples, or
    per-example differences all equal (no spread to scale the effect by)."""
    common = {
        "power": power,
        "alpha": alpha,
        "alpha_rule": alpha_rule,
        "examples": examples,
        "spread": differences_sd if examples >= 2 else 0.0,
        "seeds": [seed_spread.seeds_a, seed_spread.seeds_b],
        "seed_spread": [seed_spread.sd_a, seed_spread.sd_b],
        "effect": effect,
        "effect_source": effect_source,
        "available_examples": available_examples,
        "formula": FORMULA,
    }
    undefined = {"mde": None, "adequate": None, "needed_examples": None}
    if examples < 2:
        plural = "s" if examples != 1 else ""
        return Detectable(
            **common,
            **undefined,
            needed_note=f"undefined: {examples} example{plural}",
            text=f"with {examples} example{plural} there is no spread to estimate, so what this run could have "
            "detected is unknown",
        )
    if not differences_sd > 0:
        return Detectable(
            **common,
            **undefined,
            needed_note="undefined: the per-example differences have no spread",
            text="the per-example differences are all equal (no spread), so what this run could have detected "
            "cannot be estimated from it",
        )
    seed_power = seed_level_power(seed_spread, alpha=alpha, seed=seed) if seed_spread.measured else None
    mde = detectable_difference(sd=differences_sd, examples=examples, alpha=alpha, power=power, seed_power=seed_power)
    needed = examples_needed(sd=differences_sd, effect=effect, alpha=alpha, power=power, seed_power=seed_power)
    # No number of examples is enough when the seed level alone cannot reach the power.
    seeds_short = seed_power is not None and seed_power(effect) < power
    needs = {"needed": needed, "examples": examples, "available": available_examples, "seeds": seeds_short}
    if margin:
        at = f"{power:.0%} power at the {1 - alpha:.0%} interval"
        text = (
            f"had LoRA matched full fine-tuning, this run would have shown it within {effect:g} ({at}: it can show a "
            f"margin of {mde:.4f}); not showing it does not prove that the gap is larger"
            if mde <= effect
            else f"even had LoRA matched full fine-tuning, this run could not have shown a margin below {mde:.4f} "
            f"({at}); " + _needed_words(**needs, goal=f"show it within {effect:g}")
        )
    else:
        at = f"{power:.0%} power at alpha {alpha:.3g}"
        text = (
            f"a difference of at least {mde:.4f} would have been detected ({at}; the effect that matters: "
            f"{effect:g}); not detecting one does not show that the two are equal"
            if mde <= effect
            else f"this run could not have detected a difference below {mde:.4f} ({at}); "
            + _needed_words(**needs, goal=f"detect {effect:g}")
        )
    if needed is None:
        note = "more seeds needed" if seeds_short else f"more than {MAX_EXAMPLES:,}"
    elif available_examples is not None and needed > available_examples:
        note = f"more than the {available_examples:,} the evaluation split holds"
    else:
        note = None
    return Detectable(**common, mde=mde, adequate=mde <= effect, needed_examples=needed, needed_note=note, text=text)


def _needed_words(*, needed: int | None, goal: str, examples: int, available: int | None, seeds: bool) -> str:
    """How many examples would be needed to `goal` ("detect 0.03"), or why no number would do."""
    if needed is None and seeds:
        return (
            f"no number of examples alone would be enough to {goal}: the seed level, with the seeds run and "
            "their spread, cannot reach the power, so more seeds are needed"
        )
    if needed is None:
        return f"more than {MAX_EXAMPLES:,} examples would be needed to {goal}"
    words = f"about {needed:,} examples would be needed to {goal} ({examples:,} here"
    if available is not None and needed > available:
        words += f"; more than the {available:,} the evaluation split holds"
    elif available is not None:
        words += f", of the {available:,} the evaluation split holds"
    return words + ")"
