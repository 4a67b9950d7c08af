"""The training data path: the seeded per-step batch order, and a ``DataLoader`` that follows it.

The order of the patches is a function of ``(seed, epoch)`` only (:func:`epoch_order`), so that a
resumed run reads exactly the batches an uninterrupted one would. :class:`StepBatchSampler` turns
that order into one list of bank indices per optimiser step (this process's share of the global
batch under DDP), starting at any step of an epoch; :func:`make_loader` wraps it in a
``torch.utils.data.DataLoader`` so that patches can be cut, rotated and stacked by worker processes
while the model computes, into pinned memory on CUDA.
"""

from __future__ import annotations

import math
import signal
from typing import Iterator, Sequence

import torch
from torch.utils.data import DataLoader, Dataset, Sampler


def epoch_order(n_items: int, n_indices: int, seed: int, epoch: int) -> torch.Tensor:
    """The patch indices of one epoch: a function of ``(seed, epoch)`` only, so that resume is exact.

    Args:
        n_items: size of the patch bank.
        n_indices: how many indices the epoch needs (steps × batch); permutations are chained if more
            than ``n_items``.
        seed, epoch: what the order depends on.

    Returns:
        A ``(n_indices,)`` int64 tensor of bank indices.
    """
    generator = torch.Generator().manual_seed(int(seed) * 1_000_003 + int(epoch))
    rounds = [torch.randperm(n_items, generator=generator) for _ in range(math.ceil(n_indices / n_items))]
    return torch.cat(rounds)[:n_indices]


class StepBatchSampler(Sampler[list[int]]):
    """Yields, for each remaining step of the current epoch, this process's indices of the global batch.

    Step ``k`` of epoch ``e`` takes ``epoch_order(...)[k * batch : (k + 1) * batch]``, and process
    ``rank`` of ``world`` keeps every ``world``-th index of it from ``rank`` on. Call
    :meth:`set_epoch` before iterating each epoch (the sampler lives in the main process, also with
    persistent DataLoader workers, so the change is seen by the next iteration).

    Args:
        n_items: size of the patch bank.
        steps: optimiser steps per epoch.
        batch: the global batch size.
        seed: the run's seed (decides the order with the epoch).
        rank, world: this process's rank and the number of processes.
    """

    def __init__(self, n_items: int, steps: int, batch: int, seed: int, rank: int = 0, world: int = 1):
        self.n_items, self.steps, self.batch, self.seed = int(n_items), int(steps), int(batch), int(seed)
        self.rank, self.world = int(rank), int(world)
        self.epoch, self.first_step = 0, 0

    def set_epoch(self, epoch: int, first_step: int = 0) -> None:
        """Make the next iteration cover steps ``first_step .. steps - 1`` of ``epoch``."""
        self.epoch, self.first_step = int(epoch), int(first_step)

    def __iter__(self) -> Iterator[list[int]]:
        order = epoch_order(self.n_items, self.steps * self.batch, self.seed, self.epoch)
        for step in range(self.first_step, self.steps):
            yield order[step * self.batch : (step + 1) * self.batch][self.rank :: self.world].tolist()

    def __len__(self) -> int:
        return max(0, self.steps - self.first_step)


def collate_pairs(pairs: Sequence[tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack ``(lr (L, h, w), hr (L, H, W))`` items into float32 ``(B, L, h, w)`` and ``(B, L, H, W)``."""
    lr = torch.stack([torch.as_tensor(p[0]) for p in pairs])  # (B, L, h, w)
    hr = torch.stack([torch.as_tensor(p[1]) for p in pairs])  # (B, L, H, W)
    return lr.float(), hr.float()


def make_loader(bank: Dataset, sampler: StepBatchSampler, *, workers: int = 0,
                device: torch.device = torch.device("cpu")) -> DataLoader:
    """A ``DataLoader`` reading ``bank`` in the order of ``sampler``.

    Args:
        bank: a Dataset of ``(lr, hr)`` pairs (picklable when ``workers > 0``).
        sampler: the per-step batch order.
        workers: worker processes (0: batches are built in this process, which keeps tests simple).
            Workers are persistent, so they are started once per training and not once per epoch.
        device: the training device; on CUDA the batches are collated into pinned (page-locked)
            memory, so that the copies to the GPU can be asynchronous (``non_blocking=True``).

    Returns:
        The loader; every item is ``(lr, hr)`` as :func:`collate_pairs` stacks them.
    """
    # The loader's own generator: every iterator draws its workers' base seed from ``loader.generator``,
    # by default torch's global one. A resumed epoch creates one more iterator than the uninterrupted
    # run had, so the global RNG (dropout, a method's own random draws) would drift by one draw after a
    # mid-epoch resume. Seeded by the run's seed and rank, the workers' seeds are reproducible too.
    generator = torch.Generator().manual_seed(sampler.seed * 1_000_003 + sampler.rank + 7)
    return DataLoader(bank, batch_sampler=sampler, num_workers=int(workers), collate_fn=collate_pairs,
                      pin_memory=device.type == "cuda", persistent_workers=int(workers) > 0,
                      worker_init_fn=_ignore_ctrl_c if int(workers) > 0 else None, generator=generator)


def _ignore_ctrl_c(worker_id: int) -> None:
    """Let a worker ignore Ctrl-C: the training loop saves a checkpoint at the next step boundary, and a
    worker that died of the same SIGINT would fail the batch the loop is still waiting for."""
    del worker_id
    signal.signal(signal.SIGINT, signal.SIG_IGN)
