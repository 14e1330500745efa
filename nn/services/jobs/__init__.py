"""Jobs in worker processes: a runner with a cap on concurrent jobs, a queue, pause, resume,
stop and crash reports, on this machine or on a Ray cluster.

    from nn.services.jobs import JobRunner
    runner = JobRunner(max_jobs=2)
    settings = TrainingJob(model={"hidden_layers": [32], "epochs": 2}, data={"train_size": 500})
    job = runner.submit("train", {"job": settings.to_dict()}, owner="local", listener=print)
    job.pause(); job.resume(); job.stop()      # only set events the worker checks
    job.wait(); job.status, job.error, job.value, model_from_job(job)
    runner.cancel(job.id)                      # idempotent: dequeue, or stop (then terminate)

A job is a function ``fn(ctx) -> value`` or ``-> (value, arrays)`` run in its own process:
``value`` is JSON-able, ``arrays`` maps names to NumPy arrays. ``ctx.config`` and ``ctx.arrays``
hold what was submitted, ``ctx.emit(payload)`` streams a JSON-able dict back (training jobs send
``TrainingEvent``s as dicts), ``ctx.check()`` blocks while the job is paused and returns True
once a stop was asked for. Jobs are named by :data:`JOB_KINDS` or ``"module:function"``.

One concern a file:
    ``wire``      the messages and arrays that travel (statuses: ``nn.services.status``)
    ``context``   what a job function sees in its worker, and the worker's work around it
    ``limits``    the OS's limits on a local worker (priority, address space, BLAS variables)
    ``governor``  a job's BLAS threads
    ``runner``    the runner, its jobs and its queue
    ``local``     worker processes on this machine
    ``ray``       Ray tasks
    ``bodies``    the job functions the dashboard submits (training, search, fine-tuning)

A worker that crashes, raises (``MemoryError`` included) or is killed ends its job as
``"failed"`` with a message naming the exception, the exit code or the signal; the server and the
other jobs go on.

Settings (arguments of :class:`JobRunner`, or the environment for
:meth:`JobRunner.from_environment`):
    ``NN_MAX_JOBS``            jobs running at once (default: the number of cores); the others
                               wait in the queue and know their place in it.
    ``NN_JOB_BLAS_THREADS``    BLAS threads of each job (default ``auto``: a local worker gets
                               up to the cores shared by the running jobs, set between batches
                               by a :class:`BlasGovernor` from how busy the other processes
                               keep the cores; a Ray task :func:`auto_blas_threads`).
    ``NN_JOB_RESERVED_CORES``  cores :func:`auto_blas_threads` (Ray tasks) leaves to the
                               server and the browser (default 1 on two cores or more).
    ``NN_JOB_NICE``            how much lower than the server's a local worker's CPU priority is
                               (``nice`` increment, default :data:`DEFAULT_JOB_NICE`; 0 keeps
                               it equal), so that pages answer while jobs fill the cores.
    ``NN_JOB_MEMORY_BYTES``    address space a local worker may add to what it has mapped when it
                               starts (``RLIMIT_AS``): an allocation past it is a
                               ``MemoryError`` in the worker, reported as the job's failure,
                               instead of the kernel's OOM killer choosing a process (default
                               :func:`default_memory_limit`; 0: no cap).
    ``NN_JOBS_PER_USER``       jobs one signed-in person runs at once (default 1); the queue takes
                               turns across people (:class:`FairQueue`).
    ``NN_RAY_ADDRESS``         a Ray cluster's address (``auto``, ``ray://host:10001``,
                               ``host:6379``): jobs run there as Ray tasks instead.
"""

from nn.services.jobs.bodies import model_from_job, search_result_from_job
from nn.services.jobs.context import JOB_KINDS, JobContext
from nn.services.jobs.fair import FairQueue
from nn.services.jobs.governor import BlasGovernor, auto_blas_threads
from nn.services.jobs.limits import DEFAULT_JOB_NICE, default_memory_limit
from nn.services.jobs.runner import Job, JobRunner

__all__ = [
    "DEFAULT_JOB_NICE",
    "JOB_KINDS",
    "BlasGovernor",
    "FairQueue",
    "Job",
    "JobContext",
    "JobRunner",
    "auto_blas_threads",
    "default_memory_limit",
    "model_from_job",
    "search_result_from_job",
]
