"""Launch planning: torchrun arguments for one node, many nodes and SLURM jobs."""

from __future__ import annotations

import pytest

from spmkit.train.launch import LaunchError, plan_launch


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


def test_bad_input_is_reported_once_before_launching(tmp_path, monkeypatch) -> None:
    from imagefolder_util import train_args
    from typer.testing import CliRunner

    import spmkit.train.launch as launch_mod
    from spmkit.cli.app import app

    monkeypatch.delenv("LOCAL_RANK", raising=False)
    launched = []
    monkeypatch.setattr(launch_mod, "launch", lambda plan, args: launched.append(args) or 0)
    res = CliRunner().invoke(app, train_args(tmp_path / "nowhere", tmp_path / "run", 1, 4, "--devices", "cpu",
                                             "--nproc", "2"))
    assert res.exit_code == 2 and "does not exist" in res.output and not launched
    from imagefolder_util import make_imagefolder

    data = make_imagefolder(tmp_path / "data", classes=2, train_per_class=2, val_per_class=1)
    res = CliRunner().invoke(app, train_args(data, tmp_path / "run", 3, 4, "--devices", "cpu", "--nproc", "2"))
    assert res.exit_code == 0, res.output
    (args,) = launched
    assert args[:1] == ["train"] and "--nproc" not in args  # the children train instead of launching again
    assert ["--set", "epochs=3"] == args[args.index("epochs=3") - 1 : args.index("epochs=3") + 1]
    assert args[args.index("--device") + 1] == "cpu" and args[args.index("--blueprint") + 1] == "tiny_pvt"


def test_static_ranks_get_the_environment_torchrun_would_give() -> None:
    from spmkit.train.launch import rank_envs

    plan = plan_launch(4, nodes=2, node_rank=1, rdzv_endpoint="head:29500", env={})
    assert plan.static and not plan_launch(4, nodes=2, rdzv_endpoint="head:29500", env={}).static
    envs = rank_envs(plan, ("head", "29500"))
    assert [e["RANK"] for e in envs] == ["4", "5", "6", "7"] and [e["LOCAL_RANK"] for e in envs] == ["0", "1", "2", "3"]
    assert {(e["WORLD_SIZE"], e["LOCAL_WORLD_SIZE"], e["MASTER_ADDR"], e["MASTER_PORT"]) for e in envs} == {
        ("8", "4", "head", "29500")}
    assert plan_launch(2, env={}).static  # one node: started here, on a free local port
