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


HOST = """
import json, sys, optsched as o
o.distributed.initialize(f"127.0.0.1:{sys.argv[1]}", 2, int(sys.argv[2]))
import jax
problems = [o.PowerLawProblem(a, b) for a, b in ((1.5, 1.3), (2.5, 1.5), (1.5, 2.5))]
with o.float64():
    sols = o.solve_many(problems, 60, 0.5, optimiser=o.LBFGS(knots=8, max_knots=16))
print(json.dumps({"processes": jax.process_count(), "devices": jax.device_count(),
                  "final": [s.final_loss for s in sols],
                  "lr": [s.schedule.lr.tolist() for s in sols]}))
"""


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_give_the_single_process_results():
    """Two CPU processes joined by jax.distributed (one host device each) split the three solves
    (process 0 takes the first and third) and both return all three, equal to one process's."""
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    env["XLA_FLAGS"] = "--xla_force_host_platform_device_count=1"
    port = str(_free_port())
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", HOST, port, str(p)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for p in (0, 1)
    ]
    outs = []
    for proc in procs:
        stdout, stderr = proc.communicate(timeout=600)
        assert proc.returncode == 0, stderr[-2000:]
        outs.append(json.loads(stdout.strip().splitlines()[-1]))
    one = _run(1)
    for out in outs:
        assert out["processes"] == 2 and out["devices"] == 2
        for a, b in zip(one["final"], out["final"], strict=True):
            assert b == pytest.approx(a, rel=1e-9)
        for a, b in zip(one["lr"], out["lr"], strict=True):
            assert b == pytest.approx(a, rel=1e-7, abs=1e-12)


def test_single_process_helpers_and_bad_settings(monkeypatch):
    import optsched as o

    assert o.distributed.allgather({"x": 1}) == [{"x": 1}]
    assert list(o.distributed.share(3)) == [0, 1, 2]
    monkeypatch.setenv("OPTSCHED_NUM_PROCESSES", "two")
    with pytest.raises(ValueError, match="OPTSCHED_NUM_PROCESSES must be an integer"):
        o.distributed.initialize("127.0.0.1:1")
    monkeypatch.setenv("OPTSCHED_NUM_PROCESSES", "2")
    monkeypatch.setenv("OPTSCHED_PROCESS_ID", "2")
    with pytest.raises(ValueError, match=r"process id 2 is outside \[0, 2\)"):
        o.distributed.initialize("127.0.0.1:1")
    with pytest.raises(ValueError, match="at least 1"):
        o.distributed.initialize("127.0.0.1:1", 0, 0)
