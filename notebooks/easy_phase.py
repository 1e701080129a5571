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
# # The easy phase: one schedule shape for every horizon
#
# In the power-law random-feature model with eigenvalues $\lambda_k = k^{-b}$ and target power
# $\lambda_k (w^*_k)^2 = k^{-a}$, the problem is *easy* when $a > b$. Theory (docs/model.md, the
# source paper) says the optimal learning-rate schedule for a horizon of $T$ steps is
#
# $$\eta^*_T(t) \simeq T^{-\xi}\,(1 - t/T)^{\delta}, \qquad \xi = 1 - b/a,\quad \delta = 2b - 1,$$
#
# and reaches a final loss $L_T \sim T^{-(a-1)/a}$. This notebook solves the optimal schedule at
# several horizons for $a = 2.5$, $b = 1.2$ at infinite width and checks all three exponents.
# Set `OPTSCHED_QUICK=1` for a fast run (CI does): two decades of $T$ instead of four.

# %%
import os

import numpy as np

from optsched.model.theory import exponents, local_exponents
from optsched.reproduce import easy_phase

QUICK = os.environ.get("OPTSCHED_QUICK", "0") == "1"
result = easy_phase.run(quick=QUICK)
result.figures["easy_phase"]

# %% [markdown]
# Left: the optimal schedules. Each warms up (the exact recursion has a short warmup that
# continuum models lack), peaks, and decays to near zero at $t = T$; the peak falls with $T$.
# Right: rescaled by $T^{\xi}$ with the *theory* value of $\xi$ and plotted against $t/T$, the
# schedules fall onto one curve, and the decay follows $(1 - t/T)^{\delta}$ (dashed).
#
# ## The exponents, measured against theory
# $\xi$ is fitted from $\eta^*$ at $t/T \in \{0.3, 0.5, 0.7\}$ across horizons, $\delta$ on the
# largest horizon over $t/T \in [0.5, 0.95]$, the loss exponent from $L^*_T$ across horizons.

# %%
print(result.table())

# %% [markdown]
# The exponents are asymptotic. The local slopes between consecutive horizons show the drift
# towards theory as $T$ grows:

# %%
theory = exponents(2.5, 1.2)
fit = result.numbers["fit"]
print("horizons:             ", fit["horizons"])
print(
    "local loss exponents: ",
    np.round(fit["loss_exponent_local"], 3),
    f" theory {theory.loss_optimal:.3f}",
)
print("local xi:             ", np.round(fit["xi_local"], 3), f" theory {theory.xi:.3f}")
T = result.numbers["horizons"]
print(
    "all horizons, local loss exponents:",
    np.round(-local_exponents(T, result.numbers["final_loss"]), 3),
)

# %% [markdown]
# The notebook's claims, asserted (CI runs it at quick size, where the tolerances are the quick
# ones of the checks above):

# %%
failed = [c for c in result.checks if not c.passed]
assert not failed, "checks outside tolerance:\n" + result.table()
assert np.all(np.diff(result.numbers["final_loss"]) < 0), "longer training must end lower"
