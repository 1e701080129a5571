"""Figures shared by the notebooks and the CLI (matplotlib; nothing in the package imports this)."""

from __future__ import annotations

import numpy as np

__all__ = ["plot_loss_curves", "plot_schedules"]


def _axes(ax):
    if ax is None:
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt

        _, ax = plt.subplots(figsize=(5.5, 4.0), constrained_layout=True)
    return ax


def plot_loss_curves(curves: dict, *, ax=None, title: str | None = None):
    """Excess loss against steps on log-log axes, one line per ``{label: Trajectory}``."""
    ax = _axes(ax)
    for label, traj in curves.items():
        steps = np.asarray(traj.steps)
        loss = np.asarray(traj.loss)
        keep = steps > 0
        ax.loglog(steps[keep], loss[keep], label=label)
    ax.set_xlabel("step $t$")
    ax.set_ylabel(r"excess loss $L_t$")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(frameon=False)
    if title:
        ax.set_title(title)
    return ax


def plot_schedules(schedules: dict, *, ax=None, log_y: bool = False):
    """Learning rate against step, one line per ``{label: Schedule}``."""
    ax = _axes(ax)
    for label, sched in schedules.items():
        t = np.arange(sched.horizon)
        ax.plot(t, np.asarray(sched.lr_at(t)), label=label)
    ax.set_xlabel("step $t$")
    ax.set_ylabel(r"learning rate $\eta_t$")
    if log_y:
        ax.set_yscale("log")
    ax.grid(True, alpha=0.3)
    ax.legend(frameon=False)
    return ax
