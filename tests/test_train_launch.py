"""Launch planning: torchrun arguments for one node, many nodes and SLURM jobs."""

from __future__ import annotations

import pytest

from spmkit.engine.launch import LaunchError, plan_launch


def test_single_process_needs_no_launcher() -> None:
    assert plan_launch(1, env={}) is None


def test_one_node_many_processes_is_standalone() -> None:
    plan = plan_launch(8, env={})
    assert plan.torchrun_args() == ["--standalone", "--nproc-per-node=8"]


def test_multi_node_c10d_and_static() -> None:
    plan = plan_launch(4, nodes=2, rdzv_endpoint="head:29500", env={})
    assert plan.torchrun_args() == ["--nproc-per-node=4", "--nnodes=2", "--rdzv-backend=c10d",
                                    "--rdzv-endpoint=head:29500", "--rdzv-id=spmkit"]
    plan = plan_launch(4, nodes=2, node_rank=1, rdzv_endpoint="head:29500", env={})
    assert plan.torchrun_args()[-3:] == ["--node-rank=1", "--master-addr=head", "--master-port=29500"]
    with pytest.raises(LaunchError, match="rdzv-endpoint"):
        plan_launch(4, nodes=2, env={}).torchrun_args()
    with pytest.raises(LaunchError, match="outside"):
        plan_launch(4, nodes=2, node_rank=2, rdzv_endpoint="h:1", env={})


def test_slurm_variables_are_honoured() -> None:
    env = {"SLURM_NNODES": "3", "SLURM_NODEID": "2", "SLURM_JOB_ID": "777", "SLURM_JOB_NODELIST": "gpu[07-09]",
           "MASTER_PORT": "12345"}
    plan = plan_launch(8, env=env)
    assert (plan.nodes, plan.node_rank, plan.rdzv_id) == (3, 2, "777")
    assert plan.rdzv_endpoint == "gpu07:12345"
    assert "--node-rank=2" in plan.torchrun_args() and "--master-addr=gpu07" in plan.torchrun_args()
    # explicit options win over the job's variables
    assert plan_launch(8, nodes=1, env=env) is not None and plan_launch(8, nodes=1, env=env).nodes == 1
