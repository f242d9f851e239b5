"""Multi-GPU and multi-node training through PyTorch's own engine: run the same command under
``torchrun`` (e.g. ``torchrun --nproc_per_node 4 -m bidsxai ... train``) and every process trains
one DistributedDataParallel replica on its share of each epoch's batches.

NCCL is used on GPUs and gloo on CPUs (the test suite runs two gloo processes). Each process
evaluates the whole validation set itself; rank 0's figures decide model selection and early
stopping for all, so the replicas never disagree, and only rank 0 writes outputs.
"""

import os
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Ranks:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def active(self):
        return self.world > 1

    @property
    def main(self):
        return self.rank == 0


SINGLE_PROCESS = Ranks()


def start():
    """The process's place in a torchrun job (a single process outside torchrun)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return SINGLE_PROCESS
    if not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return Ranks(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def stop(ranks):
    if ranks.active and dist.is_initialized():
        dist.destroy_process_group()


def from_main(ranks, values):
    """Rank 0's float values, on every rank."""
    tensor = torch.tensor(values, dtype=torch.float64)
    if ranks.active:
        dist.broadcast(tensor, 0)
    return tensor.tolist()


def check_in_sync(ranks, model):
    """Refuse to go on when the replicas' weights differ (DDP keeps them equal; a difference means a
    rank took other steps)."""
    if not ranks.active:
        return
    with torch.no_grad():
        total = torch.stack([p.detach().double().sum().cpu() for p in model.parameters()]).sum()
    low, high = total.clone(), total.clone()
    dist.all_reduce(low, dist.ReduceOp.MIN)
    dist.all_reduce(high, dist.ReduceOp.MAX)
    if not torch.equal(low, high):
        raise RuntimeError(f"DDP replicas diverged (weight sums {float(low)} to {float(high)})")


def barrier(ranks):
    if ranks.active:
        dist.barrier()


class BalancedSampler(torch.utils.data.Sampler):
    """Class-balanced draws with replacement (weights 1 / class count), one epoch's draw shared by
    all ranks and dealt out rank by rank; ``set_epoch`` gives each epoch a new draw."""

    def __init__(self, labels, seed, ranks=SINGLE_PROCESS):
        labels = np.asarray(labels)
        self.weights = torch.as_tensor(1.0 / np.bincount(labels)[labels], dtype=torch.double)
        self.seed, self.ranks, self.epoch = seed, ranks, 0
        self.per_rank = -(-len(labels) // ranks.world)

    def set_epoch(self, epoch):
        self.epoch = epoch

    def __len__(self):
        return self.per_rank

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed * 100003 + self.epoch)
        draw = torch.multinomial(
            self.weights, self.per_rank * self.ranks.world, True, generator=generator
        )
        return iter(draw[self.ranks.rank :: self.ranks.world].tolist())
