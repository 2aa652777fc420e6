"""processes.mapper: tasks in spawned worker processes, results in task order, and no worker left behind."""

import multiprocessing
import os
import time

import pytest

from momentcalc import MomentcalcError, processes


def _slow_square(x):
    time.sleep(0.05 * (x % 3))  # finish out of order
    return x * x


def _fails_at_three(x):
    if x == 3:
        raise ValueError(f"no {x}")
    return x


def _dies_at_two(x):
    if x == 2:
        os._exit(9)  # as a worker the system kills (out of memory) would
    return x


def test_one_job_is_the_builtin_map_in_this_process():
    with processes.mapper(1) as map_:
        assert map_ is map


def test_results_come_in_task_order_from_the_workers():
    with processes.mapper(2) as map_:
        assert list(map_(_slow_square, range(8))) == [x * x for x in range(8)]
    assert processes.started() and not multiprocessing.active_children()


def test_a_tasks_exception_is_raised_as_itself_and_stops_the_workers():
    with pytest.raises(ValueError, match="no 3"), processes.mapper(2) as map_:
        list(map_(_fails_at_three, range(6)))
    assert not multiprocessing.active_children()


def test_a_worker_that_dies_is_an_error_that_says_so():
    with pytest.raises(MomentcalcError, match="worker process died"), processes.mapper(2) as map_:
        list(map_(_dies_at_two, range(6)))
    assert not multiprocessing.active_children()
