"""Multi-process training under torchrun: the process group, each rank's device, small collectives.

torchrun sets RANK, WORLD_SIZE and LOCAL_RANK (and MASTER_ADDR/MASTER_PORT); without them every
function here describes, and acts as, a single process. The backend is NCCL when the ranks train
on CUDA and gloo otherwise. See docs/distributed.md.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import inspect
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from sessionrec.data.batching import Batch
from sessionrec.errors import ConfigError
from sessionrec.training.config import resolve_device

TIMEOUT_MINUTES = 60  # collectives wait this long (rank 0 may be building a large graph)
TRACE_ENV = "SESSIONREC_WEIGHT_TRACE"  # test-only: a directory for per-step weight digests


@dataclass(frozen=True)
class World:
    """This process's place among the training processes (one process: rank 0 of 1)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    try:
        return int(value) if value not in (None, "") else default
    except ValueError:
        raise ConfigError(f"{name} must be an integer, not '{value}' (set by torchrun)") from None


def env_world() -> World:
    """The world torchrun describes in the environment (before or without a process group)."""
    return World(_env_int("RANK", 0), _env_int("WORLD_SIZE", 1), _env_int("LOCAL_RANK", 0))


def current() -> World:
    """The world of the initialised process group, else a single process."""
    if dist.is_available() and dist.is_initialized():
        return World(dist.get_rank(), dist.get_world_size(), _env_int("LOCAL_RANK", 0))
    return World()


def rank_device(name: str, world: World | None = None) -> torch.device:
    """`resolve_device(name)`; `auto` and `cuda` pick GPU LOCAL_RANK in a multi-process run."""
    world = world or current()
    device = resolve_device(name)
    if device.type == "cuda" and device.index is None and world.enabled:
        if world.local_rank >= torch.cuda.device_count():
            raise ConfigError(
                f"LOCAL_RANK {world.local_rank} has no GPU ({torch.cuda.device_count()} visible); "
                "start at most one process per GPU (--nproc_per_node)"
            )
        device = torch.device("cuda", world.local_rank)
    return device


def setup(device: str = "auto") -> bool:
    """Join the process group torchrun describes; True if this call created it (and owns it)."""
    world = env_world()
    if not world.enabled or (dist.is_available() and dist.is_initialized()):
        return False
    if not dist.is_available():
        raise ConfigError("this PyTorch build has no torch.distributed; run one process")
    dev = rank_device(device, world)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    dist.init_process_group(
        "nccl" if dev.type == "cuda" else "gloo",
        rank=world.rank,
        world_size=world.world_size,
        timeout=datetime.timedelta(minutes=TIMEOUT_MINUTES),
    )
    return True


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def _comm_device() -> torch.device:
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def all_sum(values: list[float]) -> list[float]:
    """Element-wise sum of `values` over all ranks (float64)."""
    t = torch.tensor(values, dtype=torch.float64, device=_comm_device())
    dist.all_reduce(t)
    return t.cpu().tolist()


def all_gather_objects(obj: Any) -> list[Any]:
    """`obj` of every rank, in rank order (pickled between our own processes)."""
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def broadcast_module(module: nn.Module, src: int = 0) -> None:
    """Copy the parameters and buffers of rank `src` into every rank's `module`."""
    with torch.no_grad():
        for t in [*module.parameters(), *module.buffers()]:
            moved = t.data.to(_comm_device())
            dist.broadcast(moved, src)
            t.data.copy_(moved.to(t.device))


@contextlib.contextmanager
def local_main_first(world: World | None = None) -> Iterator[None]:
    """Run the body on each node's local rank 0 first (filling on-disk caches), then the others."""
    world = world or current()
    if world.enabled and world.local_rank != 0:
        dist.barrier()
    yield
    if world.enabled and world.local_rank == 0:
        dist.barrier()


class _TrainingLoss(nn.Module):
    """`loss(net, batch)` as the forward of a module that owns `net`.

    DDP synchronises gradients only for a forward that runs through its wrapper; the loss may
    use more of the module than its forward (extra terms), so the wrapper's forward is exactly
    the loss.
    """

    def __init__(self, net: nn.Module, loss: Callable[[nn.Module, Batch], torch.Tensor]) -> None:
        super().__init__()
        self.net = net
        self._loss = loss

    def forward(self, batch: Batch) -> torch.Tensor:
        return self._loss(self.net, batch)


def ddp_loss(
    net: nn.Module, loss: Callable[[nn.Module, Batch], torch.Tensor], device: torch.device
) -> nn.Module:
    """A DDP module whose forward(batch) is `loss(net, batch)` (batch on the device).

    Unused parameters are allowed (ablations leave some out); buffers are derived from the
    training data identically on every rank, so they are not re-broadcast at each forward.
    """
    from torch.nn.parallel import DistributedDataParallel as DDP

    kwargs: dict[str, Any] = {"find_unused_parameters": True}
    if "forward_sync_buffers" in inspect.signature(DDP.__init__).parameters:
        kwargs["forward_sync_buffers"] = False
    else:
        kwargs["broadcast_buffers"] = False
    if device.type == "cuda":
        kwargs.update(device_ids=[device], output_device=device)
    return DDP(_TrainingLoss(net, loss), **kwargs)


def weight_digest(module: nn.Module) -> str:
    """SHA-1 of every parameter's bytes (to check that ranks hold identical weights)."""
    h = hashlib.sha1()
    for name, p in module.named_parameters():
        h.update(name.encode())
        h.update(p.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()
