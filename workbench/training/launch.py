"""Generated ``accelerate launch`` configs: multi-process, multi-GPU and multi-node runs.

We never write our own launcher: the job worker starts ``accelerate launch`` with a config
file written into the run folder. On CPU the processes are started by the same torchrun
launcher as multi-GPU runs and the trainer is told ``use_cpu``, which makes Accelerate
choose MULTI_CPU with the gloo backend (its own MULTI_CPU launcher needs mpirun).
"""
from __future__ import annotations

import socket
import sys
from pathlib import Path
from typing import Any

import yaml

from workbench.errors import ConfigError

DISTRIBUTED = ("ddp", "deepspeed", "fsdp")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def accelerate_config(num_processes: int, *, cpu: bool, distributed: str = "ddp", num_machines: int = 1, machine_rank: int = 0,
                      main_process_ip: str | None = None, main_process_port: int | None = None, mixed_precision: str = "no",
                      zero_stage: int = 2) -> dict[str, Any]:
    """The YAML accelerate reads (``accelerate launch --config_file``)."""
    if distributed not in DISTRIBUTED:
        raise ConfigError(f"Unknown distributed mode {distributed!r}.", hint=f"Choose one of: {', '.join(DISTRIBUTED)}.")
    if cpu and distributed != "ddp":
        raise ConfigError(f"{distributed} needs GPUs; on CPU only plain data parallel (ddp, gloo backend) is available.",
                          hint="Set distributed: ddp, or run on a machine with GPUs.")
    cfg: dict[str, Any] = {
        "compute_environment": "LOCAL_MACHINE", "distributed_type": "MULTI_GPU", "num_machines": num_machines,
        "num_processes": num_processes, "machine_rank": machine_rank, "mixed_precision": "no" if cpu else mixed_precision,
        "use_cpu": False,  # see the module docstring: the trainer's use_cpu selects gloo
        "main_process_port": main_process_port or free_port(), "rdzv_backend": "static", "same_network": True,
    }
    if num_machines > 1:
        if not main_process_ip:
            raise ConfigError("A multi-node run needs main_process_ip (the address of machine rank 0).")
        cfg["main_process_ip"] = main_process_ip
    if distributed == "deepspeed":
        cfg["distributed_type"] = "DEEPSPEED"
        cfg["deepspeed_config"] = {"zero_stage": zero_stage, "offload_optimizer_device": "none", "offload_param_device": "none",
                                   "gradient_accumulation_steps": "auto", "gradient_clipping": "auto", "zero3_init_flag": zero_stage == 3}
    elif distributed == "fsdp":
        cfg["distributed_type"] = "FSDP"
        cfg["fsdp_config"] = {"fsdp_version": 2, "fsdp_auto_wrap_policy": "TRANSFORMER_BASED_WRAP", "fsdp_state_dict_type": "SHARDED_STATE_DICT",
                              "fsdp_cpu_ram_efficient_loading": True, "fsdp_reshard_after_forward": True}
    return cfg


def write_accelerate_config(path: Path, cfg: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
    return path


def accelerate_command(config_file: Path, module: str, *args: str) -> list[str]:
    """``python -m accelerate.commands.launch --config_file F -m module args…`` (same interpreter)."""
    return [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(config_file), "-m", module, *args]
