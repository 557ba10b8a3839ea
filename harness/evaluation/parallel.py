"""Data-parallel evaluation on accelerate: which process this is, and how the work is split.

Under ``torchrun --nproc_per_node N -m harness eval ...`` or ``accelerate launch -m harness eval
...`` every process runs the same command; :func:`world` finds its rank through accelerate's
``PartialState`` (which sets up ``torch.distributed``: gloo on CPU, NCCL on GPUs). A plain
``harness eval`` is a world of one and never imports accelerate.

The split never depends on timing: the stimuli, in the dataset's canonical order, are cut into
chunks of ``batch size`` and chunk ``k`` belongs to rank ``k mod N``. A chunk is also the model's
batch, so every stimulus is computed in the same batch, with the same neighbours, whatever the
number of processes: results are bitwise identical for 1, 2 or N processes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

LAUNCH_ENV = ("WORLD_SIZE", "RANK", "LOCAL_RANK")

#: how long a rank waits for the others at a barrier (rank 0 may wait for another job's run)
DIST_TIMEOUT_HOURS = 24


@dataclass
class World:
    rank: int = 0
    size: int = 1
    local_size: int = 1
    device: str = "cpu"
    _state: Any = field(default=None, repr=False)

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self._state is not None and self.size > 1:
            self._collective(self._state.wait_for_everyone)

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every rank: decisions rank 0 makes for the run (what is left to
        compute) are followed, not made again from what each rank happens to read."""
        if self._state is None or self.size == 1:
            return obj
        from accelerate.utils import broadcast_object_list

        return self._collective(lambda: broadcast_object_list([obj], from_process=0))[0]

    def gather(self, obj: Any) -> list[Any]:
        """Every rank's ``obj``, in rank order, on every rank."""
        if self._state is None or self.size == 1:
            return [obj]
        from accelerate.utils import gather_object

        return self._collective(lambda: gather_object([obj]))

    def check_same(self, value: Any, what: str) -> None:
        """One line on every rank when the ranks were given different work (an option that differs
        on one rank made it write another run's folders, its barriers pairing with rank 0's of
        other runs: found by QA)."""
        values = self.gather(value)
        for r, v in enumerate(values):
            if v != values[0]:
                if isinstance(v, dict) and isinstance(values[0], dict):
                    keys = sorted(k for k in set(v) | set(values[0]) if v.get(k) != values[0].get(k))
                    shown = "; ".join(f"{k}: {values[0].get(k)!r:.60} on rank 0, {v.get(k)!r:.60} on rank {r}"
                                      for k in keys[:3])
                else:
                    shown = f"{values[0]!r:.80} on rank 0, {v!r:.80} on rank {r}"
                from ..errors import HarnessError

                raise HarnessError(f"the processes of this job were given different {what} ({shown}): start every "
                                   "process with the same command and options")

    def _collective(self, fn):
        try:
            return fn()
        except RuntimeError as exc:  # gloo/NCCL: a peer died or its connection closed
            from ..errors import HarnessError

            why = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
            raise HarnessError(f"another process of this job stopped while this one waited for it ({why}); the "
                               "finished batches are kept: run the same command again to resume") from exc

    def owns(self, chunk: int) -> bool:
        return chunk % self.size == self.rank


def launched() -> bool:
    """Started by torchrun / accelerate launch with more than one process."""
    return int(os.environ.get("WORLD_SIZE", "1") or 1) > 1


def best_device() -> str:
    import torch

    if torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "mps"
    return "cpu"


#: what a CUDA model run computes with (:func:`deterministic_kernels`); part of such a run's id
CUDA_KERNELS = "deterministic-fp32"


def deterministic_kernels(device: str):
    """On a CUDA device, make the model's numbers depend only on its inputs and batches: cuDNN's
    deterministic convolutions (its default lets it pick algorithms that add with atomics, whose
    order changes from run to run: Grad-CAM's backward pass meets them), no cuDNN autotuning,
    torch's deterministic implementations where an op has one (a warning where it has none:
    ``torch.use_deterministic_algorithms(warn_only=True)``), cuBLAS with a fixed workspace
    (``CUBLAS_WORKSPACE_CONFIG``, unless set), and float32 arithmetic in full (no TF32, which
    cuDNN allows by default and which depends on the GPU generation). Without this, two runs on the
    same GPU, let alone 1 and N GPUs, need not give the same bits. Returns a function that puts the
    previous settings back (the Python API leaves a notebook's torch as it found it); on CPU and
    MPS it changes nothing. Not measured on a GPU in this project's CI (none is lent to it)."""
    if not str(device).startswith("cuda"):
        return lambda: None
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    import torch

    cudnn, matmul = torch.backends.cudnn, torch.backends.cuda.matmul
    before = (cudnn.benchmark, cudnn.deterministic, cudnn.allow_tf32, matmul.allow_tf32,
              torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled())
    cudnn.benchmark, cudnn.deterministic, cudnn.allow_tf32, matmul.allow_tf32 = False, True, False, False
    torch.use_deterministic_algorithms(True, warn_only=True)

    def restore() -> None:
        cudnn.benchmark, cudnn.deterministic, cudnn.allow_tf32, matmul.allow_tf32 = before[:4]
        torch.use_deterministic_algorithms(before[4], warn_only=before[5])

    return restore


def world(device: str | None = None) -> World:
    """This process' place in the job. ``device``: ``cpu``, ``cuda``, ``mps`` or None (the best
    available; under a launcher, the GPU of this process' local rank)."""
    from ..errors import HarnessError

    wanted = device or "auto"
    if wanted not in ("auto", "cpu", "cuda", "mps"):
        raise HarnessError(f"--device must be auto, cpu, cuda or mps, got {device!r}")
    if wanted in ("cuda", "mps") or (wanted == "auto" and launched()):
        import torch

        if wanted == "cuda" and not torch.cuda.is_available():
            raise HarnessError("--device cuda: no CUDA GPU is visible to this process")
        if wanted == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise HarnessError("--device mps: Apple's Metal backend is not available here")
    if not launched():
        return World(device=best_device() if wanted == "auto" else wanted)
    from accelerate import PartialState

    from datetime import timedelta

    # torch's 30-minute default ended a rank waiting at a barrier while rank 0 waited for another
    # job's lock on a run folder (a long human ceiling), with a traceback (found by QA); a rank that
    # dies is still noticed at once (its connection closes)
    state = PartialState(cpu=wanted == "cpu" or (wanted == "auto" and best_device() == "cpu"),
                         timeout=timedelta(hours=DIST_TIMEOUT_HOURS))
    dev = state.device
    name = dev.type if dev.index is None else f"{dev.type}:{dev.index}"
    return World(rank=state.process_index, size=state.num_processes,
                 local_size=int(os.environ.get("LOCAL_WORLD_SIZE", state.num_processes)), device=name, _state=state)
