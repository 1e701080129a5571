"""solve_many over several devices: the batched solves are spread over a mesh of host CPU
devices (XLA_FLAGS=--xla_force_host_platform_device_count) and give the single-device results."""

import json
import os
import subprocess
import sys

import pytest

SCRIPT = """
import json, jax, optsched as o
problems = [o.PowerLawProblem(a, b) for a, b in ((1.5, 1.3), (2.5, 1.5), (1.5, 2.5))]
with o.float64():
    sols = o.solve_many(problems, 60, 0.5, optimiser=o.LBFGS(knots=8, max_knots=16),
                        strategy="vmap")
print(json.dumps({"devices": jax.local_device_count(),
                  "final": [s.final_loss for s in sols],
                  "lr": [s.schedule.lr.tolist() for s in sols]}))
"""


def _run(devices: int) -> dict:
    env = dict(os.environ)
    env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
    env["JAX_PLATFORMS"] = "cpu"
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=600
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("devices", [4])
def test_sharded_solve_many_equals_the_single_device_path(devices):
    one, many = _run(1), _run(devices)
    assert one["devices"] == 1 and many["devices"] == devices
    assert len(many["final"]) == 3  # the batch of 3 was padded to 4 and cut back
    for a, b in zip(one["final"], many["final"], strict=True):
        assert b == pytest.approx(a, rel=1e-9)
    for a, b in zip(one["lr"], many["lr"], strict=True):
        assert b == pytest.approx(a, rel=1e-7, abs=1e-12)
