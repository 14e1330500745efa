"""nn.services.jobs: jobs in worker processes, a queue with a cap, pause/resume/stop, crashes and
kills reported as failed jobs, the Ray backend on a local cluster. Tests wait on the runner's
messages and events, never on the clock."""

from __future__ import annotations

import os
import signal
import sys
import threading
import types

import job_functions
import numpy as np
import pytest

from nn.services.jobs import JobRunner, auto_blas_threads, model_from_job
from nn.services.runs import RunStore
from nn.services.training import TrainingJob, run_training_job

WAIT = 300  # seconds a test waits for a worker before it fails (never reached when it works)


class Log:
    """A job listener keeping every message, with a wait for one that matches."""

    def __init__(self):
        self.messages: list[dict] = []
        self._changed = threading.Condition()

    def __call__(self, job, message):
        with self._changed:
            self.messages.append(message)
            self._changed.notify_all()

    def events(self, kind=None):
        with self._changed:
            return [
                m["event"]
                for m in self.messages
                if m["type"] == "event" and (kind is None or m["event"].get("kind") == kind)
            ]

    def wait_for(self, predicate, what="a message"):
        with self._changed:
            found = self._changed.wait_for(lambda: any(map(predicate, self.messages)), WAIT)
        assert found, f"no {what} within {WAIT} s: {self.messages[-5:]}"

    def wait_for_batches(self, n):
        self.wait_for(lambda m: len(self.events("batch")) >= n, f"{n} batch events")


def training(tmp_path, epochs=2, **model):
    job = TrainingJob(
        model={
            "hidden_layers": [16],
            "epochs": epochs,
            "batch_size": 50,
            "random_state": 0,
            **model,
        },
        data={"train_size": 300},
        source="dashboard",
        runs_db=str(tmp_path / "runs.sqlite"),
    )
    return {"job": job.to_dict()}


@pytest.fixture
def runner():
    runner = JobRunner(max_jobs=2, blas_threads=1)
    yield runner
    runner.shutdown(timeout=WAIT)


def test_training_job_streams_events_and_returns_the_model(runner, tmp_path):
    log = Log()
    job = runner.submit("train", training(tmp_path), listener=log)
    assert job.wait(WAIT)
    assert job.status == "finished", job.error
    assert job.value["status"] == "finished"
    assert [e["epoch"] for e in log.events("epoch")] == [1, 2]
    assert len(log.events("batch")) == 2 * 6  # 300 images in batches of 50
    stages = [e["stage"] for e in log.events("stage")]
    assert stages[:1] == ["loading"] and "prepared" in stages and "started" in stages
    model = model_from_job(job)
    assert model.n_iter_ == 2
    # the same job in this process gives the same network
    here = run_training_job(TrainingJob.from_dict({**training(tmp_path)["job"], "record": False}))
    for theirs, ours in zip(model.coefs_, here.result.model.coefs_, strict=True):
        np.testing.assert_allclose(theirs, ours, rtol=1e-4, atol=1e-6)
    assert job.value["test_accuracy"] == pytest.approx(here.result.test_accuracy, abs=1e-3)
    run = RunStore(tmp_path / "runs.sqlite").get_run(job.value["run_id"])
    assert run.status == "finished" and run.source == "dashboard"
    assert job.worker["imports_streamlit"] is False and job.worker["pid"] != os.getpid()


def test_pause_resume_and_stop_through_the_runner(runner, tmp_path):
    log = Log()
    job = runner.submit("train", training(tmp_path, epochs=500), listener=log)
    log.wait_for_batches(1)
    job.pause()
    assert job.control._blocked.wait(WAIT)  # the worker holds still between two batches
    assert job.snapshot()["paused"] and job.status == "running"
    seen = len(log.events("batch"))
    job.resume()
    log.wait_for_batches(seen + 2)  # it goes on
    job.stop()
    assert job.wait(WAIT)
    assert job.status == "stopped" and job.value["status"] == "stopped"
    model = model_from_job(job)
    assert model.n_iter_ < 500 and model.stop_reason_ == "callback"
    run = RunStore(tmp_path / "runs.sqlite").get_run(job.value["run_id"])
    assert run.status == "stopped"


def test_a_killed_worker_is_a_failed_job_and_the_runner_goes_on(runner, tmp_path):
    log = Log()
    job = runner.submit("train", training(tmp_path, epochs=500), listener=log)
    log.wait_for_batches(1)
    job.pause()
    assert job.control._blocked.wait(WAIT)
    os.kill(job.worker["pid"], signal.SIGKILL)
    assert job.wait(WAIT)
    assert job.status == "failed" and job.exitcode == -signal.SIGKILL
    assert "SIGKILL" in job.error and "killed" in job.error
    assert log.messages[-1] == {"type": "status", "status": "failed", "error": job.error}
    after = runner.submit(job_functions.report_environment)
    assert after.wait(WAIT) and after.status == "finished"


def test_memory_error_and_a_silent_exit_are_failed_jobs(runner):
    memory = runner.submit(job_functions.exhaust_memory)
    silent = runner.submit(job_functions.die_abruptly)
    assert memory.wait(WAIT) and silent.wait(WAIT)
    assert memory.status == "failed" and memory.error.startswith("MemoryError")
    assert "exhaust_memory" in memory.traceback
    assert silent.status == "failed" and silent.exitcode == 3
    assert "exited with code 3" in silent.error


def test_with_a_cap_of_two_a_third_job_waits_in_the_queue(runner):
    logs = [Log() for _ in range(4)]
    a, b, c, d = (runner.submit(job_functions.hold_until_stopped, listener=log) for log in logs)
    for log in logs[:2]:
        log.wait_for(lambda m: m.get("event", {}).get("kind") == "holding", "holding")
    assert (a.status, b.status, c.status, d.status) == ("running", "running", "queued", "queued")
    assert (c.queue_position, d.queue_position) == (1, 2)
    assert {"type": "status", "status": "queued", "position": 2} in logs[3].messages
    assert runner.counts() == {"running": 2, "queued": 2}
    runner.cancel(c.id)  # dropped from the queue: d moves up
    assert c.status == "cancelled" and c.wait(0) and d.queue_position == 1
    assert logs[3].messages[-1] == {"type": "status", "status": "queued", "position": 1}
    a.stop()
    logs[3].wait_for(lambda m: m.get("event", {}).get("kind") == "holding", "holding")
    assert a.status == "stopped" and d.status == "running" and d.queue_position is None
    assert b.status == "running"
    assert not any(m["type"] == "event" for m in logs[2].messages)  # c never ran


def test_cancel_is_idempotent_and_ends_a_session_s_jobs():
    runner = JobRunner(max_jobs=1, blas_threads=1)
    try:
        log = Log()
        running = runner.submit(job_functions.hold_until_stopped, owner="tab-1", listener=log)
        queued = runner.submit(job_functions.hold_until_stopped, owner="tab-1")
        other = runner.submit(job_functions.report_environment, owner="tab-2")
        log.wait_for(lambda m: m.get("event", {}).get("kind") == "holding", "holding")
        for _ in range(2):  # every job of one owner, twice
            for job in runner.jobs("tab-1"):
                runner.cancel(job.id)
        runner.cancel(running.id)
        runner.cancel(10_000)  # unknown: nothing happens
        assert queued.status == "cancelled"
        assert running.wait(WAIT) and running.status == "stopped"
        assert other.wait(WAIT) and other.status == "finished"
        assert [m for m in log.messages if m.get("status") == "stopped"] == [
            {"type": "status", "status": "stopped", "error": None}
        ]
    finally:
        runner.shutdown(timeout=WAIT)


def test_a_job_that_ignores_stop_is_terminated():
    runner = JobRunner(max_jobs=1, blas_threads=1)
    try:
        log = Log()
        job = runner.submit(job_functions.ignore_stop, listener=log)
        log.wait_for(lambda m: m.get("event", {}).get("kind") == "ignoring", "ignoring")
        runner.cancel(job.id, terminate_after=0.0)
        assert job.wait(WAIT)
        assert job.status == "failed" and "terminated" in job.error
        assert job.exitcode == -signal.SIGTERM
    finally:
        runner.shutdown(timeout=WAIT)


def test_worker_gets_its_blas_threads_and_never_imports_streamlit(monkeypatch, tmp_path):
    """A server started as ``bin/streamlit`` (a main module with a file that imports Streamlit):
    the worker does not run it, and has the BLAS thread variables of its job."""
    import streamlit  # noqa: F401 - the server has it loaded

    script = tmp_path / "streamlit_script.py"
    script.write_text("import streamlit\n")
    main = types.ModuleType("__main__")
    main.__file__ = str(script)
    monkeypatch.setitem(sys.modules, "__main__", main)
    before = os.environ.get("OPENBLAS_NUM_THREADS")
    runner = JobRunner(max_jobs=1, blas_threads=1)
    try:
        job = runner.submit(
            job_functions.report_environment, {"a": [1, 2]}, arrays={"w": np.arange(3)}
        )
        assert job.wait(WAIT) and job.status == "finished", job.error
    finally:
        runner.shutdown(timeout=WAIT)
    assert job.value["streamlit"] == [] and job.worker["imports_streamlit"] is False
    assert job.value["main"] is None
    assert job.value["threads"] == {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    assert job.value["config"] == {"a": [1, 2]} and job.value["arrays"] == {"w": [0, 1, 2]}
    assert sys.modules["__main__"] is main and os.environ.get("OPENBLAS_NUM_THREADS") == before


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="needs Linux's /proc")
def test_a_worker_s_threads_run_at_a_lower_priority_than_the_server():
    """Every thread of the worker, BLAS's included, gets the runner's ``nice`` increment over
    the server's (0: the same priority)."""
    server = os.getpriority(os.PRIO_PROCESS, 0)
    if server > 19 - 3:
        pytest.skip(f"this process runs at nice {server}: no room to lower a worker's priority")
    seen = {}
    for nice in (0, 3):
        runner = JobRunner(max_jobs=1, blas_threads=2, nice=nice)
        try:
            job = runner.submit(job_functions.report_priorities)
            assert job.wait(WAIT) and job.status == "finished", job.error
        finally:
            runner.shutdown(timeout=WAIT)
        assert job.value["threads"] >= 3, job.value  # main, controls, BLAS
        seen[nice] = job.value["nice"]
        assert job.worker["nice"] == server + nice
    assert seen == {0: [server], 3: [server + 3]}
    with pytest.raises(ValueError, match="nice must be between 0 and 19"):
        JobRunner(nice=20)


@pytest.mark.skipif(not os.path.isfile("/proc/self/status"), reason="needs Linux's /proc")
def test_an_allocation_past_the_worker_s_memory_cap_is_a_memory_error(tmp_path):
    """A worker may map ``memory_limit`` bytes beyond its start: 512 MB past a 256 MB cap is a
    MemoryError reported as the job's failure; the same allocation without a cap succeeds, the
    runner goes on, and a training under the default cap finishes."""
    size = 512 * 1024**2
    capped = JobRunner(max_jobs=1, blas_threads=1, memory_limit=256 * 1024**2)
    free = JobRunner(max_jobs=1, blas_threads=1, memory_limit=0)
    default = JobRunner(max_jobs=1, blas_threads=1)
    try:
        over = capped.submit(job_functions.allocate, {"bytes": size})
        assert over.wait(WAIT) and over.status == "failed"
        assert over.error.startswith("MemoryError"), over.error
        assert over.worker["address_space_limit"] is not None
        fits = capped.submit(job_functions.allocate, {"bytes": 16 * 1024**2})
        assert fits.wait(WAIT) and fits.status == "finished", fits.error
        uncapped = free.submit(job_functions.allocate, {"bytes": size})
        assert uncapped.wait(WAIT) and uncapped.status == "finished", uncapped.error
        assert uncapped.worker["address_space_limit"] is None
        trained = default.submit("train", training(tmp_path, epochs=1))
        assert trained.wait(WAIT) and trained.status == "finished", trained.error
        assert trained.worker["address_space_limit"] is not None
    finally:
        for runner in (capped, free, default):
            runner.shutdown(timeout=WAIT)


def test_blas_threads_and_settings_from_the_environment(monkeypatch):
    assert auto_blas_threads(2, 1, 1) == 1
    assert auto_blas_threads(8, 1, 1) == 7
    assert auto_blas_threads(8, 2, 1) == 3
    assert auto_blas_threads(2, 5, 1) == 1
    monkeypatch.setenv("NN_MAX_JOBS", "3")
    monkeypatch.setenv("NN_JOB_BLAS_THREADS", "auto")
    runner = JobRunner.from_environment()
    assert runner.max_jobs == 3 and runner.blas_threads is None and runner.backend == "local"
    assert runner.nice == 10 and runner.memory_limit > 4 * 1024**3
    monkeypatch.setenv("NN_JOB_MEMORY_BYTES", "0")
    assert JobRunner.from_environment().memory_limit == 0
    monkeypatch.setenv("NN_JOB_NICE", "0")
    assert JobRunner.from_environment().nice == 0
    monkeypatch.setenv("NN_MAX_JOBS", "0")
    with pytest.raises(ValueError, match="NN_MAX_JOBS must be at least 1"):
        JobRunner.from_environment()
    monkeypatch.setenv("NN_MAX_JOBS", "many")
    with pytest.raises(ValueError, match="NN_MAX_JOBS='many' is not a whole number"):
        JobRunner.from_environment()


def test_unknown_jobs_and_configs_that_cannot_travel(runner):
    job = runner.submit("no_such_job")
    assert job.wait(WAIT) and job.status == "failed" and "unknown job 'no_such_job'" in job.error
    with pytest.raises(ValueError, match="JSON-able"):
        runner.submit("train", {"job": object()})


@pytest.fixture
def ray_cluster():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield ray
    finally:
        ray.shutdown()


def test_ray_backend_trains_pauses_resumes_and_stops(ray_cluster, tmp_path):
    runner = JobRunner(max_jobs=2, blas_threads=1, ray_address="local")
    assert runner.backend == "ray"
    try:
        log = Log()
        job = runner.submit("train", training(tmp_path, epochs=500), listener=log)
        log.wait_for_batches(1)
        job.pause()
        assert job.control._blocked.wait(WAIT)
        seen = len(log.events("batch"))
        job.resume()
        log.wait_for_batches(seen + 2)
        job.stop()
        assert job.wait(WAIT)
        assert job.status == "stopped", job.error
        assert job.worker["imports_streamlit"] is False and job.worker["blas_threads"] in (1, None)
        assert model_from_job(job).stop_reason_ == "callback"
        bad = training(tmp_path, learning_rate=-1.0)
        failed = runner.submit("train", bad)
        assert failed.wait(WAIT) and failed.status == "failed"
        assert "learning_rate" in failed.error and "Traceback" in failed.traceback
    finally:
        runner.shutdown(timeout=WAIT)


def test_the_blas_governor_follows_how_busy_the_other_processes_keep_the_cores():
    """One thread at the start; the most once a window finds the others using little of the
    cores; back to one as soon as one finds them taking most of a core (a busy loop, another
    job). The readings are (machine CPU seconds, this process's CPU seconds)."""
    from nn.core import blas
    from nn.services.jobs import BlasGovernor

    readings = iter([(0.0, 0.0), (2.1, 2.0), (4.1, 4.0), (5.9, 5.0), (7.4, 6.0), (8.5, 7.0)])
    clock = iter(range(100))
    before = blas.get_threads()
    try:
        governor = BlasGovernor(2, read=lambda: next(readings), clock=lambda: next(clock))
        assert governor.threads == 1 and blas.get_threads() in (1, None)
        assert governor.tick() == 2  # the others used 0.1 CPU s in a 1 s window: quiet
        assert blas.get_threads() in (2, None)
        assert governor.tick() == 2
        assert governor.tick() == 1  # the others 0.8 s: contested
        assert governor.tick() == 1  # 0.5 s: neither, it stays
        assert governor.tick() == 2  # 0.1 s: quiet again
        assert governor.changes == 3
    finally:
        if before is not None:
            blas.set_threads(before)


def test_an_automatic_thread_count_is_adapted_in_a_local_worker():
    """NN_JOB_BLAS_THREADS=auto: a local job gets up to the cores the running jobs share, and
    its worker adapts them (a set count is kept as it is)."""
    runner = JobRunner(max_jobs=1)
    try:
        job = runner.submit(job_functions.report_environment, {})
        assert job.wait(WAIT) and job.status == "finished", job.error
    finally:
        runner.shutdown(timeout=WAIT)
    cores = os.cpu_count() or 1
    assert job.blas_threads == cores and job.adaptive_threads is True
    assert job.value["threads"]["OPENBLAS_NUM_THREADS"] == str(cores)
    assert job.worker["adaptive_threads"] is (cores > 1)
    fixed = JobRunner(max_jobs=1, blas_threads=1)
    try:
        job = fixed.submit(job_functions.report_environment, {})
        assert job.wait(WAIT) and job.status == "finished", job.error
    finally:
        fixed.shutdown(timeout=WAIT)
    assert job.adaptive_threads is False and job.worker["adaptive_threads"] is False
