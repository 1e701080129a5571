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
# # The loss dynamics of SGD on a power-law random-feature model
#
# Every schedule optsched proposes is judged by one model: the expected per-mode error
# $c_{t,k} = E[(w_{t,k} - w^*_k)^2]$ of minibatch SGD on Gaussian features with eigenvalues
# $\lambda_k = k^{-b}$ and target power $\lambda_k (w^*_k)^2 = k^{-a}$,
#
# $$c_{t+1,k} = \big[1 - 2\eta\lambda_k + (1 + 1/m)\eta^2\lambda_k^2\big] c_{t,k}
#   + \frac{\eta^2}{m}\lambda_k (L_t + \sigma^2).$$
#
# This notebook shows that (1) the recursion is the mean of real SGD runs, (2) the closed-form
# block propagation and the ODE reproduce it, and (3) the quadrature reaches infinite width.
# Set `OPTSCHED_QUICK=1` for a fast run (CI does).

# %%
import os

import matplotlib.pyplot as plt
import numpy as np

import optsched as o
from optsched.reproduce.plotting import plot_loss_curves

QUICK = os.environ.get("OPTSCHED_QUICK", "0") == "1"
RUNS = 512 if QUICK else 1024

# %% [markdown]
# ## 1. The recursion is the mean of SGD on sampled data
# A small problem (30 student features, a 60-mode teacher whose tail acts as extra noise),
# trained with a decaying learning rate. The band is the Monte-Carlo mean $\pm 2$ standard errors.

# %%
small = o.PowerLawProblem(a=2.0, b=1.5, sigma=0.3, batch=4, features=30, teacher_modes=60)
T = 300
sched = o.Schedule.from_function(lambda t: 0.6 * (1 - t / T) ** 1.5 + 0.02, T)
sim = o.simulate(small, sched, runs=RUNS)
pred = o.loss_curve(small, sched, method="scan")

fig, ax = plt.subplots(figsize=(5.5, 4))
t = np.arange(1, T + 1)
mean, se = np.asarray(sim.mean)[1:], np.asarray(sim.stderr)[1:]
ax.fill_between(t, mean - 2 * se, mean + 2 * se, alpha=0.3, label=f"SGD, {RUNS} runs (±2 s.e.)")
ax.loglog(t, np.asarray(pred.loss)[1:], "k", lw=1, label="exact recursion")
ax.set_xlabel("step $t$")
ax.set_ylabel("excess loss $L_t$")
ax.legend(frameon=False)
z = (np.asarray(pred.loss) - np.asarray(sim.mean)) / np.asarray(sim.stderr)
print(f"largest |z| over steps 1..T: {np.max(np.abs(z[1:])):.2f}")
# the recursion is the Monte-Carlo mean (300 correlated steps: |z| < 4.5 at every step)
assert np.max(np.abs(z[1:])) < 4.5

# %% [markdown]
# ## 2. Three ways to compute the same curve
# For a piecewise-constant schedule the block propagation is exact and its cost does not depend
# on the horizon. The continuous-time ODE is the small-learning-rate limit.

# %%
problem = o.PowerLawProblem(a=2.5, b=1.2, sigma=0.1, batch=4, features=500)
T = 1000
blocks = o.Schedule(
    [0, 10, 100, 600, 900, T - 1],
    [0.1, 0.3, 0.3, 0.1, 0.02, 0.02],
    horizon=T,
    interpolation="previous",
)
curves = {m: o.loss_curve(problem, blocks, method=m) for m in ("scan", "blocks", "ode")}
ends = np.asarray(curves["blocks"].steps)
exact_at_ends = np.asarray(curves["scan"].loss)[ends]
block_error = np.max(np.abs(np.asarray(curves["blocks"].loss) / exact_at_ends - 1))
print("blocks vs scan, max rel. diff:", block_error)
assert block_error < 1e-10  # closed form and recursion agree to rounding
ode_error = abs(float(curves["ode"].final_loss) / float(curves["scan"].final_loss) - 1)
print("ODE vs scan, final loss rel. diff:", ode_error)
ax = plot_loss_curves({"exact recursion": curves["scan"], "ODE (diffrax)": curves["ode"]})
ax.loglog(ends[1:], np.asarray(curves["blocks"].loss)[1:], "o", label="closed-form blocks")
ax.legend(frameon=False)

# %% [markdown]
# ## 3. Infinite width
# With $N = \infty$ the modes are a log-$k$ quadrature: a few exact head modes plus Gauss-Legendre
# panels; modes too slow to move within the horizon are a constant.

# %%
for N in (100, 1000, 10_000, np.inf):
    p = o.PowerLawProblem(a=2.5, b=1.2, sigma=0.1, batch=4, features=N)
    grid = o.mode_grid(N, b=1.2, max_time=blocks.intrinsic_time())
    L = o.loss_curve(p, blocks).final_loss
    print(f"N = {N:>8}: {grid.size:>4} tracked modes, final excess loss {float(L):.5e}")
