"""Process-group plumbing for `torchrun`, kept out of the model and the training loop's arithmetic.

    torchrun --standalone --nproc_per_node 2 -m llmlab pretrain ...      # 2 processes on this machine (gloo on CPU)
    torchrun --nnodes 2 --node_rank R --master_addr HOST --nproc_per_node 8 -m llmlab pretrain ...   # (nccl on GPUs)

Without torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK) it is a single process and nothing is initialised.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator, TypeVar

import torch
import torch.distributed as dist

T = TypeVar("T")


@dataclass(frozen=True)
class Dist:
    rank: int
    world: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def pick_device(preference: str) -> torch.device:
    if preference == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(preference)


def init_distributed(device_preference: str = "auto") -> Dist:
    device = pick_device(device_preference)
    if "RANK" not in os.environ:
        return Dist(0, 1, 0, device)
    rank, world, local_rank = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ["LOCAL_RANK"])
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    else:  # share the cores between the processes on this machine instead of oversubscribing them
        local_world = int(os.environ.get("LOCAL_WORLD_SIZE", world))
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // local_world))
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return Dist(rank, world, local_rank, device)


def wrap_ddp(model: torch.nn.Module, d: Dist) -> torch.nn.Module:
    """The module to call for training: DistributedDataParallel over `model` with several processes, else `model`."""
    if d.world == 1:
        return model
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(model, device_ids=[d.local_rank] if d.device.type == "cuda" else None)


def all_reduce_sum(value: torch.Tensor, d: Dist) -> torch.Tensor:
    if d.world > 1:
        dist.all_reduce(value, op=dist.ReduceOp.SUM)
    return value


def barrier(d: Dist) -> None:
    if d.world > 1:
        dist.barrier()


def main_first(d: Dist, fn: Callable[[], T]) -> T:
    """fn() on rank 0 first, then on the other processes once it is done (for work that writes files the first
    time it runs, such as the default fine-tuning data); returns fn's result on every process."""
    if d.is_main:
        result = fn()
        barrier(d)
        return result
    barrier(d)
    return fn()


def shutdown(d: Dist) -> None:
    if d.world > 1 and dist.is_initialized():
        dist.destroy_process_group()


@contextmanager
def distributed(device_preference: str = "auto") -> Iterator[Dist]:
    """`with distributed(cfg.device) as d:` a training stage's process group, torn down however the stage ends.

    A group that already exists (`llmlab speedrun` holds one across its stages) is joined and left as it is:
    destroying and re-creating the default group in one process races on torchrun's rendezvous store."""
    owner = not dist.is_initialized()
    d = init_distributed(device_preference)
    try:
        yield d
    finally:
        if owner:
            shutdown(d)
