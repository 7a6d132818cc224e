"""roiops._threads.run_tasks: every task once, in contiguous chunks, on the threads asked for."""
import multiprocessing
import os
import threading

import numba
import pytest

from roiops._threads import run_tasks


def record(chunks, begin, end):
    chunks.append((begin, end, threading.get_ident()))


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("num_tasks", [0, 1, 5, 64])
def test_every_task_runs_once_in_contiguous_chunks(threads, num_tasks):
    threads = min(threads, numba.config.NUMBA_NUM_THREADS)
    chunks = []
    previous = numba.get_num_threads()
    numba.set_num_threads(threads)
    try:
        run_tasks(record, num_tasks, chunks)
    finally:
        numba.set_num_threads(previous)
    covered = sorted(task for begin, end, _ in chunks for task in range(begin, end))
    assert covered == list(range(num_tasks))
    assert len(chunks) == max(1, min(threads, num_tasks))
    # The calling thread takes the first chunk.
    assert min(chunks)[2] == threading.get_ident()


def test_an_error_in_any_chunk_reaches_the_caller():
    def fail_late(begin, end):
        if end == 10:
            raise ValueError("chunk failed")

    previous = numba.get_num_threads()
    numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
    try:
        with pytest.raises(ValueError, match="chunk failed"):
            run_tasks(fail_late, 10)
    finally:
        numba.set_num_threads(previous)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork only")
def test_a_forked_child_runs_tasks_on_a_pool_of_its_own():
    """The parent's pool threads do not exist in a forked child: handing them tasks would
    hang. The child runs on two threads after the parent did."""
    previous = numba.get_num_threads()
    numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
    try:
        run_tasks(record, 4, [])  # the parent's pool exists now
        context = multiprocessing.get_context("fork")
        with context.Pool(1) as pool:
            chunks = pool.apply_async(_chunks_in_child).get(timeout=60)
    finally:
        numba.set_num_threads(previous)
    assert sorted(task for begin, end, _ in chunks for task in range(begin, end)) == [0, 1, 2, 3]


def _chunks_in_child():
    numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
    chunks = []
    run_tasks(record, 4, chunks)
    return chunks
