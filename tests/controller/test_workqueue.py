"""The work queue dedupes keys, honours requested times and backs off failures up to a cap."""

from rollwise.controller.workqueue import BACKOFF_CAP_SECONDS, WorkQueue


def test_a_key_is_queued_once() -> None:
    queue = WorkQueue()
    queue.add("default/a")
    queue.add("default/a")
    queue.add("default/b")
    assert queue.pop_ready(now=0) == ["default/a", "default/b"]
    assert queue.pop_ready(now=0) == []


def test_delayed_keys_fall_due_at_their_time_and_earliest_wins() -> None:
    queue = WorkQueue()
    queue.add_after("a", 10, now=0)
    queue.add_after("a", 5, now=0)
    queue.add_after("a", 20, now=0)
    assert queue.next_due() == 5
    assert queue.pop_ready(now=4.9) == []
    assert queue.pop_ready(now=5) == ["a"]
    assert queue.next_due() is None


def test_failures_back_off_exponentially_up_to_the_cap() -> None:
    queue = WorkQueue()
    delays = [queue.fail("a", now=0) for _ in range(12)]
    assert delays[:3] == [0.05, 0.1, 0.2]
    assert delays[-1] == BACKOFF_CAP_SECONDS
    queue.succeed("a")
    assert queue.fail("a", now=100) == 0.05
