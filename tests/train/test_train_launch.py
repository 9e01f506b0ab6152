"""`curate train` under `accelerate launch` (issue 27, many GPUs): two real processes on the
CPU train one model together (accelerate's MULTI_CPU, gloo), only the main process writes the
record and speaks; the Slurm script builds one `accelerate launch` per node that accelerate's
own parser accepts."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from train_fixtures import release_fixture, tiny_lm_fixture  # noqa: F401  (fixtures)

from curate.read.releases import load_release

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.slow
def test_two_processes_train_one_model_under_accelerate_launch(release, tiny_lm, tmp_path):
    load_release(release)["text"].select(range(16)).to_json(tmp_path / "chat.jsonl")
    accelerate = Path(sys.executable).parent / "accelerate"
    command = [str(accelerate), "launch", "--multi_gpu", "--num_processes", "2",
               "--main_process_port", str(free_port()),
               "-m", "curate.cli", "train", "sft", "chat.jsonl", "--model", str(tiny_lm), "--out", "out",
               "--set", "use_cpu=true",  # GPUs need nothing more; on the CPU accelerate runs gloo
               "--set", "max_steps=2", "--set", "per_device_train_batch_size=2", "--set", "max_length=64",
               "--set", "logging_steps=1", "--set", "save_strategy=no", "--set", "report_to=none"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    record = json.loads((tmp_path / "out/curate-train.json").read_text())
    assert record["distributed"] == {"type": "MULTI_CPU", "world_size": 2}
    assert record["status"] == "finished" and record["result"]["global_step"] == 2
    assert len(record["result"]["losses"]) == 2
    assert (tmp_path / "out/model.safetensors").exists()
    said = [line for line in done.stdout.splitlines() if line.startswith("sft on ")]
    assert len(said) == 1, done.stdout  # the main process speaks; the other is quiet


STUBS = {
    "scontrol": 'printf "gpu-a\\ngpu-b\\n"\n',
    # `srun ... hostname -I` answers an address; any other srun runs its command once per node,
    # as Slurm would, with that node's SLURM_NODEID.
    "srun": ('case " $* " in *" hostname -I "*) echo "10.1.2.3 fe80::1"; exit 0;; esac\n'
             'while [ "${1#-}" != "$1" ]; do shift; done\n'
             'for id in 0 1; do SLURM_NODEID=$id "$@"; done\n'),
    "accelerate": 'printf "%s\\n" "$*" >> "$LAUNCHED"\n',
}


@pytest.mark.parametrize("config", [None, "fsdp2.yaml"])
def test_the_slurm_script_launches_one_accelerate_per_node_that_accelerate_accepts(tmp_path, config):
    from accelerate.commands.launch import launch_command_parser

    stubs = tmp_path / "bin"
    stubs.mkdir()
    for name, body in STUBS.items():
        (stubs / name).write_text("#!/bin/bash\n" + body)
        (stubs / name).chmod(0o755)
    env = {**os.environ, "PATH": f"{stubs}:{os.environ['PATH']}", "LAUNCHED": str(tmp_path / "launched"),
           "SLURM_JOB_NODELIST": "gpu-[a-b]", "SLURM_GPUS_ON_NODE": "4", "VENV": str(tmp_path / "no-venv")}
    if config:
        env["ACCELERATE_CONFIG"] = config
    done = subprocess.run(["bash", str(ROOT / "slurm/train.sbatch"), "sft", "releases/demo/0.1.0",
                           "--model", "Qwen/Qwen2.5-7B-Instruct", "--out", "models/sft"],
                          env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "on 2 node(s) x 4 GPUs, rendezvous 10.1.2.3:29500" in done.stdout
    launched = (tmp_path / "launched").read_text().splitlines()
    how = f"--config_file {config}" if config else "--multi_gpu"
    assert launched == [
        f"launch --machine_rank {rank} {how} --num_machines 2 --num_processes 8 --main_process_ip 10.1.2.3 "
        "--main_process_port 29500 --rdzv_backend static -m curate.cli train sft releases/demo/0.1.0 "
        "--model Qwen/Qwen2.5-7B-Instruct --out models/sft" for rank in (0, 1)]
    parsed = launch_command_parser().parse_args(launched[1].split()[1:])
    assert (parsed.machine_rank, parsed.num_machines, parsed.num_processes) == (1, 2, 8)
    assert parsed.module and parsed.training_script == "curate.cli"
    assert parsed.training_script_args == ["train", "sft", "releases/demo/0.1.0", "--model",
                                           "Qwen/Qwen2.5-7B-Instruct", "--out", "models/sft"]
