"""What every experiment shares: its result type, checks against theory, and cached solves."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence

from ..model.problem import PowerLawProblem
from ..schedule import Interpolation
from ..solver.solve import Solution, _broadcast, solve, solve_many

# the two problems of docs/model.md that the paper's figures use, at infinite width
EASY = PowerLawProblem(a=2.5, b=1.2, sigma=0.1, batch=4, features=math.inf)
EASY_LR_MAX = 2.0
HARD = PowerLawProblem(a=1.3, b=2.75, sigma=0.7, batch=4, features=math.inf)
HARD_LR_MAX = 1.0


@dataclasses.dataclass(frozen=True)
class Check:
    """A measured number against theory.

    ``relation="within"`` passes when ``|measured - theory| <= tolerance``; ``"above"`` when
    ``measured > theory + tolerance`` (for claims such as "the margin grows").
    """

    quantity: str
    theory: float
    measured: float
    tolerance: float
    where: str  # the range it was measured over, e.g. "T = 1e3 .. 1e5"
    relation: str = "within"

    @property
    def passed(self) -> bool:
        if self.relation == "above":
            return bool(self.measured > self.theory + self.tolerance)
        return bool(abs(self.measured - self.theory) <= self.tolerance)

    def to_dict(self) -> dict:
        return {**dataclasses.asdict(self), "passed": self.passed}


@dataclasses.dataclass
class Result:
    """One experiment: its numbers, its checks against theory, and its figures."""

    name: str
    numbers: dict
    checks: list[Check]
    figures: dict  # {file stem: matplotlib Figure}

    def to_dict(self) -> dict:
        return {"numbers": self.numbers, "checks": [c.to_dict() for c in self.checks]}

    def table(self) -> str:
        """The checks as a markdown table."""
        return checks_table(self.checks)


def checks_table(checks) -> str:
    """Checks as a markdown table: quantity, theory, measured, tolerance, range, passed."""
    rows = [
        "| quantity | theory | measured | tolerance | over | passed |",
        "|---|---|---|---|---|---|",
    ]
    for c in checks:
        bound = f"> {c.theory + c.tolerance:.3g}" if c.relation == "above" else f"{c.theory:.3f}"
        tol = "" if c.relation == "above" else f"{c.tolerance:.3f}"
        rows.append(
            f"| {_cell(c.quantity)} | {_cell(bound)} | {c.measured:.3f} | {tol} | "
            f"{_cell(c.where)} | {'yes' if c.passed else 'NO'} |"
        )
    return "\n".join(rows)


def _cell(text) -> str:
    """A markdown table cell: pipes escaped, line breaks flattened."""
    return str(text).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


_SOLVED: dict[tuple, Solution] = {}


def interpolation_of(quick: bool) -> Interpolation:
    """How the experiments built on the easy and hard problems solve their schedules: smooth
    (``"linear"``, step by step) in full runs, so figures show the optimal shape rather than a
    staircase of knots; piecewise constant (closed form per block) in quick runs."""
    return "previous" if quick else "linear"


def _key(problem: PowerLawProblem, horizon: int, lr_max, interpolation: str) -> tuple:
    return (tuple(sorted(problem.to_dict().items())), int(horizon), lr_max, interpolation)


def solutions(
    problems: PowerLawProblem | Sequence[PowerLawProblem],
    horizons,
    lr_max=None,
    *,
    progress: Callable[[str], None] | None = None,
    interpolation: Interpolation = "previous",
) -> list[Solution]:
    """:func:`optsched.solve_many`, remembering every solution for the rest of the process.

    Experiments share problems (the easy and hard figures and the loss-scaling plot solve the
    same ones), so each ``(problem, horizon, lr_max, interpolation)`` is solved once per
    process. ``interpolation="linear"`` solves smooth schedules, one :func:`optsched.solve`
    each (step by step: the cost grows with the horizon).
    """
    triples = _broadcast(problems, horizons, lr_max)
    todo = [(p, T) for p, T, _ in triples if _key(p, T, lr_max, interpolation) not in _SOLVED]
    if interpolation == "previous":
        ps, Ts = [p for p, _ in todo], [T for _, T in todo]
        new = solve_many(ps, Ts, lr_max, progress=progress) if todo else []
    else:
        new = []
        for p, T in todo:
            if progress:
                progress(f"smooth solve, T = {T}")
            new.append(solve(p, T, lr_max, interpolation=interpolation, progress=progress))
    for (p, T), sol in zip(todo, new, strict=True):
        _SOLVED[_key(p, T, lr_max, interpolation)] = sol
    return [_SOLVED[_key(p, T, lr_max, interpolation)] for p, T, _ in triples]


def decades(horizons) -> str:
    """``"T = 1e3 .. 1e5"`` for a list of horizons."""
    lo, hi = min(horizons), max(horizons)
    return f"T = {lo:.0e} .. {hi:.0e}".replace("e+0", "e")
