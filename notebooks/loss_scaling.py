# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Loss scaling: the optimum against the tuned baselines
#
# Every `optsched.solver.solve` also tunes the standard schedules, each at its own best parameters:
# the optimal constant rate, the optimal power law $\eta_0 (1 + t)^{-\chi}$, cosine, linear and
# WSD. Theory (docs/model.md): the optimal schedule's loss falls like $T^{-(a-1)/a}$ (easy) or
# $T^{-(a-1)/b}$ (hard); the optimal constant like $T^{-(a-1)/(a-1+b)}$ (derived in docs/model.md,
# to be checked). The optimum should beat the constant and the power law *in rate*: the margin
# should grow with $T$. The solves are shared with the easy- and hard-phase notebooks.

# %%
import os

from optsched.reproduce import loss_scaling

QUICK = os.environ.get("OPTSCHED_QUICK", "0") == "1"
result = loss_scaling.run(quick=QUICK)
result.figures["loss_scaling"]

# %%
print(result.table())
for phase in ("easy", "hard"):
    print(
        phase,
        "fitted loss exponents (T >= 1000):",
        {k: round(v, 3) for k, v in result.numbers[phase]["fitted_exponent"].items()},
    )

# %% [markdown]
# Margins of the optimum over each baseline, per horizon (in percent):

# %%
for phase in ("easy", "hard"):
    losses = result.numbers[phase]["final_loss"]
    for name in ("constant", "power_law", "cosine"):
        gains = [100 * (b / o - 1) for b, o in zip(losses[name], losses["optimal"], strict=True)]
        print(f"{phase:5s} {name:10s}", " ".join(f"{g:6.1f}%" for g in gains))

# %% [markdown]
# The notebook's claims, asserted (CI runs it at quick size, where the tolerances are the quick
# ones of the checks above):

# %%
failed = [c for c in result.checks if not c.passed]
assert not failed, "checks outside tolerance:\n" + result.table()
