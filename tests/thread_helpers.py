"""Running test code on several threads at once."""

from __future__ import annotations

import threading
from typing import Any, Callable


def run_threads(target: Callable[[int], Any], n: int, timeout: float = 120.0) -> None:
    """Run ``target(0)`` … ``target(n - 1)`` on ``n`` threads and wait for all of them."""
    threads = [threading.Thread(target=target, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
    assert not any(t.is_alive() for t in threads), f"a thread still runs after {timeout:.0f} s"


def race(call: Callable[[int], Any], n: int, expected: type[BaseException]) -> list[Any]:
    """Call ``call(i)`` from ``n`` threads released together; return what each returned, or the
    ``expected`` exception it raised (any other exception fails the test)."""
    results: list[Any] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(n)

    def worker(i: int) -> None:
        barrier.wait()
        try:
            results.append(call(i))
        except expected as exc:
            results.append(exc)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test thread below
            errors.append(exc)

    run_threads(worker, n)
    assert errors == []
    return results
