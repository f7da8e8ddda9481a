"""Networks trained side by side on a CPU, each on a fixed number of threads.

A network's numbers depend on how many torch threads compute them: the
backward pass splits its sums (weight gradients, batch statistics) among the
threads, and some forward passes do too (LinkNet of the ci profile in
float32: logits up to 1.5e-7 apart on one thread and two), so one
thread and two add in another order, and the rounding differences grow over
an epoch into other networks. Two clean-clone quick runs of one commit, on 1
and 2 threads, differed in every network that sits on LinkNet for this reason
alone.

So every network trains and predicts on ``Config.train_threads`` threads (1
in every profile) whatever the machine has (:func:`network_threads`), and
the run's other threads train other networks at the same time, in spawned
processes (``Config.train_workers``). The same seed then gives the same
numbers whatever the machine's thread count (clean-clone quick runs on 1 and 2
threads are bit-equal); a machine with more threads finishes a batch sooner.
A prediction uses the cores another way: it computes as many batches at once
as the run's threads hold, each in a thread of its own with torch on one
(:func:`dmtnn.train.predict`'s ``lanes``), which gives the bits of one batch
after another (quick's DMTNN, on 2 cores: 4.4 ms an image, against 9.5 on
one thread and 5.1 on two). ``train_threads = 0`` gives a lone network all
the run's threads (faster, but its numbers then depend on the machine). On a
GPU one network trains at a time and the threads are left alone.
``dmtnn predict``, which applies shipped weights to a user's stack, computes
the same way (:func:`torch_threads`; its ``--threads``, 1 by default), so a
stack gives the same numbers on any machine of one instruction set.

- :func:`plan`: the processes of a batch and the threads of each;
- :func:`torch_threads`, :func:`prediction_lanes`: torch on a given number of
  threads, and the batches a prediction then computes at once
  (:func:`dmtnn.predict.predict_stack`);
- :func:`network_threads`: the threads one training or prediction runs on
  (:func:`dmtnn.multitask.train_network`, :func:`~dmtnn.multitask.predict_parameters`,
  :func:`dmtnn.segmentation.train_segmenter`, :func:`~dmtnn.segmentation.segment`);
- :func:`side_by_side`: a batch of trainings in the processes of :func:`plan`
  (:func:`dmtnn.multitask.train_networks`, :func:`dmtnn.segmentation.train_segmenters`).
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from typing import Any

import torch
from tqdm import tqdm

from dmtnn.config import Config
from dmtnn.settings import resolve_device, show_progress

__all__ = ["plan", "thread_count", "prediction_lanes", "torch_threads", "network_threads",
           "check_jobs", "side_by_side"]


def plan(cfg: Config, jobs: int) -> tuple[int, int]:
    """How a batch of ``jobs`` trainings runs: (processes, torch threads each).

    On a CPU each training gets ``cfg.train_threads`` threads, and the run's
    torch threads (``OMP_NUM_THREADS``, else one per core) hold
    ``threads // train_threads`` processes of them (``cfg.train_workers``, if
    set, instead), at most one per job. With ``train_threads = 0`` the run's
    threads are shared among ``min(threads, jobs)`` processes, so a job's
    threads depend on the batch and the machine. On a GPU one process trains
    at a time, on the run's threads.

    >>> from dmtnn.config import load_profile
    >>> plan(load_profile("ci", device="cpu", train_workers=1), 6)
    (1, 1)
    """
    threads = torch.get_num_threads()
    if resolve_device(cfg.device).type != "cpu":
        return 1, threads
    if cfg.train_threads:
        workers = cfg.train_workers or threads // cfg.train_threads
        return max(1, min(workers, jobs)), cfg.train_threads
    workers = max(1, min(cfg.train_workers or threads, jobs, threads))
    return workers, max(1, threads // workers)


@contextlib.contextmanager
def thread_count(n: int) -> Iterator[None]:
    """Torch computes on ``n`` threads inside the block; the count before is restored after."""
    saved = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(saved)


def prediction_lanes(threads: int, device: str | torch.device = "auto") -> int:
    """How many batches a prediction computes at once under :func:`torch_threads`
    (:func:`dmtnn.train.predict`'s ``lanes``): the process's threads over
    ``threads`` on a CPU, so that a prediction still uses the cores and gives
    the bits of one batch at a time; 1 when the count is left alone.

    >>> prediction_lanes(0, "cpu")
    1
    """
    if threads < 0:
        raise ValueError(f"threads must be >= 0 (0: the process's), got {threads}")
    if threads and resolve_device(device).type == "cpu":
        return max(1, torch.get_num_threads() // threads)
    return 1


@contextlib.contextmanager
def torch_threads(threads: int, device: str | torch.device = "auto") -> Iterator[int]:
    """Torch computes on ``threads`` threads inside the block when ``device`` is
    a CPU; with ``threads = 0``, or on a GPU, the count is left as it is.
    Yields :func:`prediction_lanes`.

    >>> with torch_threads(1, "cpu") as lanes:
    ...     torch.get_num_threads() == 1 and lanes >= 1
    True
    """
    lanes = prediction_lanes(threads, device)
    if threads and resolve_device(device).type == "cpu":
        with thread_count(threads):
            yield lanes
    else:
        yield lanes


@contextlib.contextmanager
def network_threads(cfg: Config) -> Iterator[int]:
    """The threads a network of ``cfg`` trains or predicts on inside the block:
    ``cfg.train_threads`` on a CPU (the run's threads when it is 0, and on a
    GPU); yields :func:`prediction_lanes`.
    """
    with torch_threads(cfg.train_threads, cfg.device) as lanes:
        yield lanes


def check_jobs(jobs: Sequence[Mapping[str, Any]], keys: Sequence[str], caller: str) -> None:
    """Refuse a job of a batch that sets anything but ``keys``, naming the job and the key.

    >>> check_jobs([{"arch": "unet"}, {"epochs": 2}], ("arch", "name"), "train_segmenters")
    Traceback (most recent call last):
    ...
    ValueError: job 1 of train_segmenters sets 'epochs': a job may set arch, name
    """
    for i, job in enumerate(jobs):
        for key in job:
            if key not in keys:
                raise ValueError(f"job {i} of {caller} sets {key!r}: a job may set "
                                 f"{', '.join(keys)}")


_SHARED: dict = {}  # a training process's batch-wide inputs (_start_worker)


def _start_worker(threads: int, payload: bytes) -> None:
    torch.set_num_threads(threads)
    _SHARED.update(torch.load(io.BytesIO(payload), weights_only=False))


def _run_job(run: Callable[[dict, dict], Any], job: dict) -> None:
    run(_SHARED, job)


def side_by_side(
    cfg: Config,
    run: Callable[[dict, dict], Any],
    shared: dict,
    jobs: Sequence[dict],
    *,
    batch: int | None = None,
    describe: Callable[[dict], str] = str,
    desc: str = "networks",
    progress: bool | None = None,
) -> tuple[int, int]:
    """Run ``run(shared, job)`` for every job, in :func:`plan`'s processes of ``cfg``.

    ``run`` is a module-level function (the processes are spawned and import
    it by name) that trains one network and writes its run folder, as the
    training loop does; it returns nothing the caller needs, since the caller
    reads each finished run back from disk. ``shared`` (data, a segmenter)
    is sent once to every process. Jobs start in the order given: put the
    longest first. The plan is made for ``batch`` jobs (default: as many as
    given): a resumed batch passes only the jobs left, with its full size, so
    that a job's threads never depend on what is already done. When the plan
    has one process, or there is at most one job, nothing runs and the caller
    trains the jobs itself. Returns the plan, (processes, threads each), for
    the caller's own trainings.

    Raises
    ------
    RuntimeError
        When a job fails in its process, naming it (``describe``); the runs
        finished so far and the checkpoints of the others are kept.
    """
    workers, threads = plan(cfg, len(jobs) if batch is None else batch)
    if workers <= 1 or len(jobs) <= 1:
        return workers, threads
    buffer = io.BytesIO()
    torch.save(shared, buffer)
    bar = tqdm(total=len(jobs), desc=desc, unit="run", disable=not show_progress(progress))
    with ProcessPoolExecutor(min(workers, len(jobs)), mp_context=get_context("spawn"),
                             initializer=_start_worker,
                             initargs=(threads, buffer.getvalue())) as pool:
        futures = {pool.submit(_run_job, run, job): job for job in jobs}
        for future in as_completed(futures):
            job = futures[future]
            try:
                future.result()
            except Exception as err:
                raise RuntimeError(
                    f"training {describe(job)} in a worker process failed: {err!r}. The runs "
                    f"finished so far and the checkpoints of the others are kept; run again "
                    f"to resume, or set train_workers=1 to train one at a time in this "
                    f"process") from err
            bar.set_postfix_str(describe(job))
            bar.update()
    bar.close()
    return workers, threads
