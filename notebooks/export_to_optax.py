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
# # From a solved schedule to an optax training loop
#
# The schedule is only worth something if real SGD follows the model. Here: solve the optimal
# schedule for a random-feature regression ($a = 2.5$, $b = 1.2$, $\sigma = 0.1$, batch 4,
# $N = 100$ features of a 200-mode teacher), export it with `optsched.to_optax`, and train the
# model with `optax.sgd` on freshly sampled Gaussian data, many times. The tuned cosine and WSD
# baselines go through the same export and the same data (common random numbers).

# %%
import os

import optax

import optsched as o
from optsched.reproduce import export_to_optax

QUICK = os.environ.get("OPTSCHED_QUICK", "0") == "1"

# %% [markdown]
# The export itself is one line; the schedule is a jit-able function of optax's step count:

# %%
solution = o.solve(export_to_optax.PROBLEM, 300, 2.0)
lr_schedule = o.to_optax(solution)
optimizer = optax.sgd(learning_rate=lr_schedule)
print("lr at steps 0, 10, 150, 299:", [float(lr_schedule(t)) for t in (0, 10, 150, 299)])

# %% [markdown]
# Now the measurement: every schedule trained many times, measured loss against the exact
# recursion's prediction.

# %%
result = export_to_optax.run(quick=QUICK)
result.figures["export_to_optax"]

# %%
print(result.table())
for name in ("optsched", "cosine", "wsd"):
    r = result.numbers[name]
    ratio, err = r["ratio_to_optsched"]
    print(
        f"{name:8s} predicted {r['predicted_final']:.5g}, measured {r['measured_final']:.5g} "
        f"+- {r['measured_stderr']:.2g}; / optsched {ratio:.4f} +- {err:.4f}"
    )

# %% [markdown]
# The notebook's claims, asserted (CI runs it at quick size, where the tolerances are the quick
# ones of the checks above):

# %%
failed = [c for c in result.checks if not c.passed]
assert not failed, "checks outside tolerance:\n" + result.table()
