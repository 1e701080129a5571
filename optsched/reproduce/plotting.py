"""Figures shared by the notebooks, ``optsched reproduce`` and the CLI (matplotlib, lazily).

Only :mod:`optsched.reproduce` imports this module; the solver never does."""

from __future__ import annotations

import numpy as np

__all__ = [
    "plot_loss_curves",
    "plot_schedules",
    "plot_easy_collapse",
    "plot_hard_anneal",
    "plot_loss_scaling",
    "plot_phase_diagram",
    "plot_momentum",
    "plot_batch_ramps",
    "plot_compute_optimal",
    "plot_measured_vs_predicted",
]


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


# ------------------------------------------------------------- figures of optsched.reproduce
def _figure(ncols: int, *, nrows: int = 1, width: float = 5.0, height: float = 3.8):
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(
        nrows,
        ncols,
        figsize=(width * ncols, height * nrows),
        constrained_layout=True,
        squeeze=False,
    )
    return fig, axes.ravel()


def _horizon_colors(n: int):
    import matplotlib

    return [matplotlib.colormaps["viridis"](x) for x in np.linspace(0.0, 0.9, n)]


def _readable_log_ticks(ax) -> None:
    """Readable log axes: no labels on minor ticks (they collide), and an axis spanning fewer
    than two decades labelled at 1, 2 and 5 times each power of ten in plain numbers, so that it
    never shows a single labelled tick."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    for axis, scale, limits in (
        (ax.xaxis, ax.get_xscale(), ax.get_xlim()),
        (ax.yaxis, ax.get_yscale(), ax.get_ylim()),
    ):
        axis.set_minor_formatter(NullFormatter())
        lo, hi = sorted(limits)
        if scale == "log" and lo > 0 and np.log10(hi / lo) < 2:
            short = np.log10(hi / lo) < 0.7  # under a factor 5: label every integer multiple
            subs = tuple(np.arange(1.0, 10.0)) if short else (1.0, 2.0, 5.0)
            axis.set_major_locator(LogLocator(base=10, subs=subs))
            axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))


def _finish(*axes, fontsize: int = 8) -> None:
    """Grid, legend and unlabelled minor log ticks on each axis."""
    for ax in axes:
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(frameon=False, fontsize=fontsize)
        _readable_log_ticks(ax)


def _per_horizon(ax, solutions, value) -> None:
    """One line per solution: ``value(solution, t)`` against ``t/T``, coloured by horizon."""
    for s, color in zip(solutions, _horizon_colors(len(solutions)), strict=True):
        t = np.arange(s.horizon)
        ax.plot(
            t / s.horizon, np.asarray(value(s, t)), color=color, label=f"$T$ = {_sci(s.horizon)}"
        )


def _running_median(values, fraction: float) -> np.ndarray:
    """Median over a centred window of ``fraction`` of the points (edges: the window shrinks)."""
    v = np.asarray(values, dtype=float)
    half = max(1, int(fraction * v.size) // 2)
    return np.array([np.median(v[max(0, i - half) : i + half + 1]) for i in range(v.size)])


def _sci(T: int) -> str:
    exp = int(round(np.log10(T)))
    return f"$10^{{{exp}}}$" if 10**exp == T else f"{T:g}"


def plot_easy_collapse(solutions, *, xi: float, delta: float):
    r"""Easy phase. Left: :math:`\eta^*_T(t)` for each ``T``. Right: the collapse
    :math:`T^\xi \eta^*_T(t)` against :math:`t/T`, with the theory shape
    :math:`C (1 - t/T)^\delta` (``C`` matched at ``t/T = 0.5`` on the largest ``T``)."""
    fig, (ax1, ax2) = _figure(2)
    colors = _horizon_colors(len(solutions))
    for s, color in zip(solutions, colors, strict=True):
        t = np.arange(s.horizon)
        lr = np.asarray(s.schedule.lr_at(t))
        ax1.loglog(t + 1, lr, color=color, label=f"$T$ = {_sci(s.horizon)}")
        ax2.plot(t / s.horizon, s.horizon**xi * lr, color=color, label=f"$T$ = {_sci(s.horizon)}")
    big = solutions[-1]
    u = np.linspace(0.0, 0.999, 400)
    scale = big.horizon**xi * float(big.schedule.lr_at(big.horizon // 2)) / 0.5**delta
    ax2.plot(
        u,
        scale * (1 - u) ** delta,
        "k--",
        lw=1.2,
        label=rf"theory $(1 - t/T)^{{\delta}}$, $\delta = {delta:.2f}$",
    )
    ax1.set(xlabel="step $t + 1$", ylabel=r"learning rate $\eta^*_T(t)$", title="optimal schedules")
    ax2.set(
        xlabel="training fraction $t/T$",
        ylabel=rf"$T^{{\xi}}\,\eta^*_T(t)$, "
        rf"$\xi = {xi:.2f}$ (theory)",
        title="collapse onto one shape",
    )
    for ax in (ax1, ax2):
        ax.grid(True, which="both", alpha=0.3)
        _readable_log_ticks(ax)
    ax2.legend(frameon=False, fontsize=8)
    return fig


def plot_hard_anneal(solutions, anneal_fraction, slope: float):
    r"""Hard phase. Left: :math:`\eta^*_T` against :math:`t/T` (warmup-stable-decay at the
    cap). Right: the anneal fraction against ``T`` on log-log axes with its fitted slope."""
    fig, (ax1, ax2) = _figure(2)
    _per_horizon(ax1, solutions, lambda s, t: s.schedule.lr_at(t))
    T = np.array([s.horizon for s in solutions], dtype=float)
    frac = np.asarray(anneal_fraction)
    ax2.loglog(T, frac, "o", color="C3", label=r"measured ($\eta_t < 0.95\,\eta_{max}$)")
    fit = frac[0] * (T / T[0]) ** slope
    ax2.loglog(T, fit, "C3--", lw=1, label=f"fit $T^{{{slope:.2f}}}$")
    ax1.set(
        xlabel="training fraction $t/T$",
        ylabel=r"learning rate $\eta^*_T(t)$",
        title="optimal schedules (cap $\\eta_{max}$)",
    )
    ax2.set(
        xlabel="horizon $T$ (steps)",
        ylabel="anneal fraction of training",
        title="the anneal shrinks with $T$",
    )
    _finish(ax1, ax2)
    return fig


_BASELINE_STYLE = {
    "optimal": ("k", "o", "optimal schedule"),
    "constant": ("C0", "s", "optimal constant"),
    "power_law": ("C1", "^", r"optimal power law $\eta_0(1+t)^{-\chi}$"),
    "cosine": ("C2", "v", "tuned cosine"),
}


def plot_loss_scaling(panels: dict):
    r"""Final loss against ``T``, one panel per ``{label: (horizons, {schedule: losses},
    {schedule: theory exponent or None})}``; theory slopes dashed, anchored at the largest
    ``T``."""
    fig, axes = _figure(len(panels))
    for ax, (label, (T, losses, theory)) in zip(axes, panels.items(), strict=True):
        T = np.asarray(T, dtype=float)
        for name, values in losses.items():
            color, marker, text = _BASELINE_STYLE[name]
            ax.loglog(T, values, marker=marker, color=color, label=text, lw=1)
            p = theory.get(name)
            if p is not None:
                ax.loglog(
                    T,
                    values[-1] * (T / T[-1]) ** (-p),
                    "--",
                    color=color,
                    lw=0.8,
                    label=rf"theory $T^{{-{p:.3f}}}$",
                )
        ax.set(
            xlabel="horizon $T$ (steps)", ylabel=r"final excess loss $L_T$", title=f"{label} phase"
        )
        _readable_log_ticks(ax)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(frameon=False, fontsize=7)
    return fig


def plot_phase_diagram(a_values, b_values, cells: dict, *, horizons):
    r"""Six maps over the (a, b) plane: theory phase, measured :math:`\xi`, its error, measured
    :math:`\delta` (easy cells), and the gains over the best constant and the best cosine. The
    phase boundary ``a = b`` is drawn on each."""
    fig, axes = _figure(3, nrows=2, width=4.2, height=3.5)
    maps = [
        ("easy", "theory phase (1 = easy)", "coolwarm"),
        ("xi", r"measured $\xi$", "viridis"),
        ("xi_error", r"measured $-$ theory $\xi$", "RdBu_r"),
        ("delta", r"measured $\delta$ (theory $2b - 1$)", "viridis"),
        ("gain_constant", "gain over best constant (%)", "magma"),
        ("gain_cosine", "gain over best cosine (%)", "magma"),
    ]
    data = dict(
        cells,
        xi_error=cells["xi"] - cells["xi_theory"],
        gain_constant=100 * cells["gain_constant"],
        gain_cosine=100 * cells["gain_cosine"],
    )
    a_values, b_values = np.asarray(a_values), np.asarray(b_values)
    for ax, (key, title, cmap) in zip(axes, maps, strict=True):
        values = np.ma.masked_invalid(data[key])
        kw = {}
        if key == "xi_error":
            lim = float(np.nanmax(np.abs(data[key]))) or 1.0
            kw = dict(vmin=-lim, vmax=lim)
        mesh = ax.pcolormesh(a_values, b_values, values, cmap=cmap, shading="nearest", **kw)
        fig.colorbar(mesh, ax=ax)
        lo, hi = min(a_values.min(), b_values.min()), max(a_values.max(), b_values.max())
        ax.plot([lo, hi], [lo, hi], "w--", lw=1.2)
        ax.set(
            xlim=(a_values.min(), a_values.max()),
            ylim=(b_values.min(), b_values.max()),
            xlabel="target exponent $a$",
            ylabel="spectrum exponent $b$",
            title=title,
        )
    fig.suptitle(
        f"phase diagram: optimal schedules at $T$ = {horizons[0]} and {horizons[1]} "
        "(dashed: $a = b$)"
    )
    return fig


def plot_momentum(momentum: dict, loss_sgd):
    r"""Left: the optimal momentum :math:`\beta^*(t)` against :math:`t/T` for each ``T`` (the
    first form of ``momentum = {form: [Solution per T]}``). Right: final loss against ``T``
    without momentum and with each form's schedule."""
    fig, (ax1, ax2) = _figure(2)
    first, sols = next(iter(momentum.items()))
    # beta is nearly free wherever the loss hardly depends on it, and flickers there: show its
    # running median over 5% of training (the raw knots are in the schedule files)
    _per_horizon(ax1, sols, lambda s, t: _running_median(s.schedule.momentum_at(t), 0.05))
    T = np.array([s.horizon for s in sols], dtype=float)
    ax2.loglog(T, loss_sgd, "o-", color="k", label=r"optimal $\eta(t)$, no momentum")
    for i, (form, runs) in enumerate(momentum.items()):
        ax2.loglog(
            T,
            [s.final_loss for s in runs],
            "s-",
            color=f"C{i + 3}",
            label=rf"optimal $\eta(t)$ and {form.replace('_', '-')} $\beta(t)$",
        )
    ax1.set(
        xlabel="training fraction $t/T$",
        ylabel=r"momentum $\beta^*(t)$ (running median, 5% of $T$)",
        title=f"optimal {first.replace('_', '-')} momentum (hard phase)",
    )
    ax2.set(
        xlabel="horizon $T$ (steps)",
        ylabel=r"final excess loss $L_T$",
        title="loss with and without momentum",
    )
    _finish(ax1, ax2)
    return fig


def plot_batch_ramps(sweep, target: float, theory_exponent: float):
    r"""Left: optimal batch ramps :math:`m^*(t)` at a fixed sample budget, with the theory shape
    :math:`(1 - t/T)^{1/(2b) - 1}`. Right: final loss against the number of steps at equal
    samples, ramp against constant batch, with the target loss."""
    fig, (ax1, ax2) = _figure(2)
    _per_horizon(ax1, sweep.solutions, lambda s, t: s.schedule.per_step(s.problem.batch)[2])
    big = sweep.solutions[-1]
    u = np.linspace(0.3, 0.97, 200)
    m_mid = float(np.asarray(big.schedule.per_step(big.problem.batch)[2])[big.horizon // 2])
    ax1.plot(
        u,
        m_mid * ((1 - u) / 0.5) ** theory_exponent,
        "k--",
        lw=1,
        label=rf"theory $(1 - t/T)^{{{theory_exponent:.2f}}}$",
    )
    ax1.set(
        yscale="log",
        xlabel="training fraction $t/T$",
        ylabel="batch size $m^*(t)$",
        title=f"batch ramps at $D$ = {sweep.budget:g} samples",
    )
    ax2.loglog(sweep.horizons, sweep.loss_constant, "o-", color="C0", label="constant batch $D/T$")
    ax2.loglog(sweep.horizons, sweep.loss_ramp, "s-", color="C3", label="optimal ramp")
    ax2.axhline(target, color="gray", ls=":", label="target loss")
    ax2.set(
        xlabel="steps $T$ (same samples $D$)",
        ylabel=r"final excess loss $L_T$",
        title="fewer steps to the same loss",
    )
    _finish(ax1, ax2)
    return fig


def plot_compute_optimal(widths, horizons, loss, batch: float, fronts: dict, theory: dict):
    r"""Left: loss against compute :math:`C = N T m` for each width, with the frontiers of the
    optimal schedule and the optimal constant rate. Right: :math:`N^*(C)` and :math:`T^*(C)` with
    the theory slopes."""
    fig, (ax1, ax2) = _figure(2)
    colors = _horizon_colors(len(widths))
    for i, (N, color) in enumerate(zip(widths, colors, strict=True)):
        C = np.asarray(horizons, dtype=float) * N * batch
        ax1.loglog(C, loss[i], color=color, lw=1, label=f"$N$ = {N}, optimal schedule")
    styles = {
        "optimal": ("k", "o", "frontier, optimal schedule"),
        "constant": ("C3", "s", "frontier, optimal constant rate"),
    }
    for name, front in fronts.items():
        color, marker, text = styles[name]
        C, n, t, L = (np.array(col) for col in zip(*front, strict=True))
        ax1.loglog(C, L, marker=marker, color=color, ls="-", lw=1.5, label=text)
        if name == "optimal":
            ax2.loglog(C, n, "o", color="C0", label="$N^*(C)$ measured")
            ax2.loglog(C, t, "s", color="C1", label="$T^*(C)$ measured")
            ax2.loglog(
                C,
                n[0] * (C / C[0]) ** theory["width"],
                "C0--",
                lw=1,
                label=rf"theory $C^{{{theory['width']:.2f}}}$",
            )
            ax2.loglog(
                C,
                t[0] * (C / C[0]) ** theory["horizon"],
                "C1--",
                lw=1,
                label=rf"theory $C^{{{theory['horizon']:.2f}}}$",
            )
            ax1.loglog(
                C,
                L[0] * (C / C[0]) ** (-theory["loss"]),
                "k--",
                lw=1,
                label=rf"theory $C^{{-{theory['loss']:.2f}}}$",
            )
    ax1.set(
        xlabel=r"compute $C = N\,T\,m$",
        ylabel="final loss $L$ (with the width tail)",
        title="loss against compute",
    )
    ax2.set(
        xlabel=r"compute $C = N\,T\,m$",
        ylabel="compute-optimal $N^*$, $T^*$",
        title="how to spend compute",
    )
    _finish(ax1, ax2, fontsize=7)
    return fig


def plot_measured_vs_predicted(runs: dict, schedules: dict):
    r"""Left: the exported schedules. Right: measured loss of real SGD runs (bands,
    :math:`\pm 2` standard errors) against the exact recursion's prediction (lines)."""
    fig, (ax1, ax2) = _figure(2)
    for i, (name, r) in enumerate(runs.items()):
        color = f"C{i}"
        mean, err = r["mean"], r["stderr"]
        T = len(mean) - 1
        t = np.arange(T)
        ax1.plot(t, np.asarray(schedules[name].lr_at(t)), color=color, label=name)
        steps = np.arange(1, T + 1)
        ax2.fill_between(
            steps,
            mean[1:] - 2 * err[1:],
            mean[1:] + 2 * err[1:],
            color=color,
            alpha=0.3,
            lw=0,
            label=f"{name}, measured",
        )
        ax2.plot(steps, r["predicted"][1:], color=color, lw=1, label=f"{name}, theory")
    ax1.set(xlabel="step $t$", ylabel=r"learning rate $\eta_t$", title="schedules (exported)")
    ax2.set(
        xscale="log",
        yscale="log",
        xlabel="step $t$",
        ylabel=r"excess test loss $L_t$",
        title="optax SGD: measured ($\\pm$2 s.e.) vs theory",
    )
    _finish(ax1, ax2)
    return fig
