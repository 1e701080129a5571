"""The redesign's contracts: no global JAX setting, one solve for every model with result codes,
schedules that know their units and are optax schedules, and v1 files still read."""

import json
import pathlib
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import optsched as o

DATA = pathlib.Path(__file__).parent / "data"


def test_import_and_export_leave_a_float32_training_loop_in_float32():
    code = """
import jax, jax.numpy as jnp, optax
before = jax.config.jax_enable_x64
import optsched as o
p = o.PowerLawProblem(2.5, 1.2, sigma=0.1, batch=4, features=50)
sol = o.solve(p, 60, 1.0, optimiser=o.LBFGS(max_knots=16))
assert sol.final_loss > 0 and jax.config.jax_enable_x64 == before == False
opt = optax.sgd(learning_rate=o.to_optax(sol))
w = jnp.ones(3, dtype=jnp.float32)
state = opt.init(w)
@jax.jit
def step(w, state):
    g = jax.grad(lambda w: jnp.sum(w ** 2))(w)
    u, state = opt.update(g, state, w)
    return optax.apply_updates(w, u), state
for _ in range(3):
    w, state = step(w, state)
leaves = jax.tree.leaves(state) + [w, sol.schedule(5)]
assert all(x.dtype in (jnp.float32, jnp.int32) for x in leaves), [x.dtype for x in leaves]
print("ok", float(sol.schedule(5)))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.startswith("ok")


def test_import_loads_nothing_until_a_name_is_used():
    code = """
import sys, types
import optsched as o
assert "jax" not in sys.modules and "optsched.solver.solve" not in sys.modules
from optsched.cli import build_parser
build_parser()  # the command line's help and usage errors need no JAX either
assert "jax" not in sys.modules
import optsched.simulate, optsched.transfer  # modules named like the functions they define
assert isinstance(o.simulate, types.FunctionType) and isinstance(o.transfer, types.FunctionType)
missing = [n for n in o.__all__ if getattr(o, n, None) is None]
assert not missing, missing
assert set(o.__all__) == set(o._WHERE) and set(o.__all__) <= set(dir(o))
print("ok")
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.startswith("ok")


def test_solve_reports_a_result_code_and_throws_only_when_asked():
    p = o.PowerLawProblem(2.5, 1.2, sigma=0.1, batch=4, features=50)
    sol = o.solve(p, 50, 1e10, throw=False)  # every peak searched (>= 1e-8 cap) diverges
    assert sol.result == o.RESULTS.nonfinite_loss and not sol.succeeded
    with pytest.raises(o.SolveError, match="infinite or NaN") as err:
        o.solve(p, 50, 1e10)
    assert err.value.solution.result == o.RESULTS.nonfinite_loss
    good = o.solve(p, 50, 1.0, optimiser=o.LBFGS(max_knots=16))
    assert good.result == o.RESULTS.successful and good.final_loss < good.best_baseline().final_loss


def test_bad_optimiser_settings_fail_before_any_work():
    with pytest.raises(ValueError, match="knots must be an integer >= 1"):
        o.LBFGS(knots=0)
    with pytest.raises(ValueError, match="max_knots"):
        o.LBFGS(knots=64, max_knots=16)


def test_schedule_units_convert_in_one_method_and_models_read_them():
    real = o.Schedule([0, 9], [2e-3, 1e-3], units="real", lr_scale=400.0)
    model = real.to_units("model")
    assert model.units == "model" and np.allclose(model.lr, [0.8, 0.4], rtol=1e-15)
    back = model.to_units("real", lr_scale=400.0)
    np.testing.assert_allclose(back.lr, real.lr, rtol=1e-15)
    with pytest.raises(ValueError, match="does not say its units"):
        o.Schedule([0, 9], [1.0, 1.0]).to_units("model")
    fitted = o.FittedProblem(
        o.PowerLawProblem(2.0, 1.5, sigma=0.3), 400.0, 1.5, 0.8, {}, np.zeros((6, 6)), 0.0
    )
    # the fitted model reads a real schedule as it is and a model one through its lr_scale
    np.testing.assert_allclose(fitted.predict(real), fitted.predict(model), rtol=1e-12)
    # and the power-law problem reads the real schedule in model units
    p = fitted.problem
    np.testing.assert_allclose(
        o.loss_curve(p, real, method="scan").loss,
        o.loss_curve(p, model, method="scan").loss,
        rtol=1e-14,
    )


def test_a_schedule_is_an_optax_schedule_for_int32_and_int64_steps():
    sched = o.Schedule([0, 5, 9], [0.3, 0.2, 0.1], interpolation="previous")
    steps32 = jnp.arange(12, dtype=jnp.int32)
    assert np.allclose(
        np.asarray(jax.jit(lambda t: sched(t))(steps32)), [0.3] * 5 + [0.2] * 4 + [0.1] * 3
    )
    with o.float64():
        big = jnp.asarray([2**40], dtype=jnp.int64)
        assert float(sched(big)[0]) == 0.1  # holds the last value far past the horizon
    assert sched.steps.dtype == np.int64


def test_dynamics_refuse_what_they_do_not_support():
    p = o.PowerLawProblem(2.5, 1.2, sigma=0.1, batch=4, features=20)
    mom = o.Schedule([0, 9], [0.2, 0.2], momentum=[0.5, 0.5], interpolation="previous")
    spec = o.make_spectrum(p, mom)
    for plain_sgd in (o.StepRecursion(), o.BlockPropagation()):
        with pytest.raises(o.UnsupportedScheduleError, match="has momentum"):
            plain_sgd.loss_curve(spec, mom, 4.0)
    lin = o.Schedule([0, 9], [0.2, 0.1])
    with pytest.raises(o.UnsupportedScheduleError, match="piecewise-constant"):
        o.BlockPropagation().loss_curve(spec, lin, 4.0)
    with pytest.raises(o.UnsupportedScheduleError, match="piecewise-constant"):
        o.loss_curve(p, mom.replace(interpolation="linear"), method="blocks")


def test_a_v1_file_written_by_optsched_0_1_is_read_and_rewritten_as_v2(tmp_path):
    old = json.loads((DATA / "schedule_v1.json").read_text())
    f = o.load(DATA / "schedule_v1.json")
    assert f.format == "optsched.schedule/1" and f.schedule.units == "model"
    assert f.diagnostics["version"] == "0.1.0" and f.model["kind"] == "PowerLawProblem"
    np.testing.assert_array_equal(f.schedule.lr, old["lr"])
    # the v1 prediction is what today's dynamics give for the file's schedule
    exact = o.loss_curve(f.problem, f.schedule, method="scan").final_loss
    assert float(exact) == pytest.approx(f.predicted_final_loss, rel=1e-9)
    sol = o.solve(f.problem, 150, 1.0, optimiser=o.LBFGS(max_knots=16))
    sol.save(tmp_path / "v2.json")
    new = json.loads((tmp_path / "v2.json").read_text())
    assert new["format"] == "optsched.schedule/2" and "solver" not in new
    assert new["diagnostics"]["result"] == "successful" and new["units"] == "model"
    assert o.load(tmp_path / "v2.json").predicted_final_loss == pytest.approx(sol.final_loss)


def test_the_core_works_without_matplotlib():
    code = """
import sys
sys.modules["matplotlib"] = None  # as if it were not installed
import optsched as o
from optsched.cli import main
p = o.PowerLawProblem(2.5, 1.2, sigma=0.1, batch=4, features=30)
assert o.solve(p, 40, 1.0, optimiser=o.LBFGS(max_knots=16)).succeeded
assert main(["phase", "--a", "2", "--b", "1.5"]) == 0
assert main(["curve", "--horizon", "20", "--features", "30", "--plot", "x.png"]) == 2
print("ok")
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "ok" in out.stdout and "pip install 'optsched[plot]'" in out.stderr


def test_a_horizon_too_large_for_memory_is_refused_before_any_work():
    p = o.PowerLawProblem(2.5, 1.2, sigma=0.1, batch=4)
    with pytest.raises(ValueError, match=r"horizon 3000000000 needs about \d+ GiB"):
        o.solve(p, 3_000_000_000)
