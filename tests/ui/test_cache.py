"""The app's shared, byte-bounded cache (``toyopt.ui.cache``): its bytes stay under the cap, sessions
share one entry (computed once), shared arrays are read-only, and a stopped computation keeps nothing."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from streamlit.runtime.scriptrunner_utils.exceptions import StopException

from toyopt.engine import run
from toyopt.setups import get_setup
from toyopt.ui import cache, runs


def small_run(seed: int, steps: int = 200):
    """A real Result of about 0.14 MB (LS and MGDA from 5 starts, every step recorded)."""
    config = get_setup("conicgrad2025").config(
        methods=["ls", "mgda"], steps=steps, lr=0.05, seed=seed, record_every=1
    )
    return run(config)


def array_bytes(result) -> int:
    """The bytes of a Result's numpy arrays, summed field by field (the reference for nbytes)."""
    total = 0
    for f in dataclasses.fields(result):
        value = getattr(result, f.name)
        parts = value.values() if isinstance(value, dict) else [value]
        total += sum(a.nbytes for a in parts if isinstance(a, np.ndarray))
    return total


def test_nbytes_counts_the_arrays_of_a_result_and_little_else():
    result = small_run(0)
    arrays = array_bytes(result)
    assert arrays > 100_000
    assert arrays <= cache.nbytes(result) <= 1.3 * arrays  # lanes, config and headers are small


def test_nbytes_counts_shared_objects_once_and_walks_containers():
    a = np.zeros(1000)  # 8000 bytes
    assert cache.nbytes({"x": a, "y": a}) - cache.nbytes({"x": a}) < 200
    assert cache.nbytes([a, (a.copy(), b"z" * 5000)]) >= 8000 + 8000 + 5000
    assert cache.nbytes(a[::2]) >= 4000 and cache.nbytes(np.array(1.0)) >= 8  # a view, a 0-d array


def test_the_cache_never_exceeds_its_byte_cap():
    results = [small_run(seed) for seed in range(6)]
    size = cache.nbytes(results[0])
    store = cache.SharedCache(int(2.5 * size))  # room for two
    for i, r in enumerate(results):
        assert store.put(("run", i), r)
        assert store.bytes <= store.max_bytes
        assert store.bytes == sum(cache.nbytes(v) for v in (store.get(k)[1] for k in list(store._entries)))
    assert sum(cache.nbytes(r) for r in results) > 2 * store.max_bytes
    assert len(store) == 2 and ("run", 5) in store and ("run", 4) in store


def test_least_recently_used_goes_first():
    store = cache.SharedCache(3 * 8000 + 500)
    for k in "abc":
        store.put(k, np.zeros(1000))
    assert store.get("a")[0]  # "a" is now the most recently used
    store.put("d", np.zeros(1000))
    assert [k in store for k in "abcd"] == [True, False, True, True]


def test_an_entry_above_the_cap_is_returned_but_not_kept():
    store = cache.SharedCache(10_000)
    store.put("small", np.zeros(100))
    value = store.get_or_compute("big", lambda: np.zeros(10_000))
    assert value.shape == (10_000,)
    assert "big" not in store and "small" in store and store.bytes <= 10_000
    with pytest.raises(ValueError, match="max_bytes"):
        cache.SharedCache(0)


def test_shared_arrays_are_read_only():
    store = cache.SharedCache(2**30)
    result = store.get_or_compute("r", lambda: small_run(1))
    with pytest.raises(ValueError, match="read-only"):
        result.x[0, 0, 0] = 1.0
    assert not any(a.flags.writeable for a in result.flags.values())


def test_two_sessions_asking_at_once_compute_once_and_share_the_entry():
    store = cache.SharedCache(2**30)
    calls = []
    started = threading.Event()

    def compute():
        calls.append(threading.current_thread().name)
        started.set()
        time.sleep(0.3)  # the second session asks while this one computes
        return small_run(2)

    got = {}

    def session(name):
        got[name] = store.get_or_compute(("run", "same config"), compute)

    first = threading.Thread(target=session, args=("a",), name="a")
    first.start()
    started.wait(10)
    second = threading.Thread(target=session, args=("b",), name="b")
    second.start()
    first.join(30)
    second.join(30)
    assert calls == ["a"]
    assert got["a"] is got["b"] and len(store) == 1
    assert not store._computing


def test_a_stopped_computation_keeps_nothing_and_the_waiter_computes():
    store = cache.SharedCache(2**30)
    started = threading.Event()
    calls = []

    def stopped():
        calls.append("stopped")
        started.set()
        time.sleep(0.2)
        raise StopException()  # the first session's tab closed mid-run

    errors = []

    def first():
        try:
            store.get_or_compute("k", stopped)
        except StopException:
            errors.append("stop")

    t = threading.Thread(target=first)
    t.start()
    started.wait(10)
    value = store.get_or_compute("k", lambda: calls.append("computed") or np.arange(3.0))
    t.join(10)
    assert errors == ["stop"] and calls == ["stopped", "computed"]
    assert store.get("k")[0] and np.array_equal(value, [0.0, 1.0, 2.0])


def test_the_app_runs_one_shared_result_per_config(monkeypatch):
    """Two calls (two sessions) for one config get the very same Result from one entry of the
    app's store (st.cache_data gave each call its own unpickled copy)."""
    store = cache.SharedCache(2**30)
    monkeypatch.setattr(cache, "store", lambda: store)
    config = get_setup("conicgrad2025").config(methods=["ls"], steps=30, lr=0.05, seed=7)
    a = runs.cached_run(config.to_json())
    b = runs.cached_run(config.to_json())
    assert a is b and len(store) == 1
    assert np.array_equal(a.x, run(config).x)  # the cache changes nothing in the numbers


# Run in a new interpreter: in the suite's long-lived process other tests have already shaped the
# heaps (thresholds, earlier trims), which made the RSS drop depend on test order.
_FRAGMENT_THEN_TRIM = """
import threading
import numpy as np
from toyopt.ui import cache

def rss():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmRSS:"))

np.ones(2**22).sum()  # a freed 32 MB mapping raises glibc's mmap threshold: 1 MB blocks go to the heap
held = {}

def fragment():
    blocks, pins = [], []
    for _ in range(120):
        blocks.append(np.ones(2**17))  # 1 MB, its pages touched
        pins.append(np.ones(8))  # a live block after each one
    del blocks
    held["pins"] = pins

worker = threading.Thread(target=fragment)
worker.start()
worker.join()
before = rss()
cache.release_freed_memory()
print(before - rss())
"""


def test_freed_heap_pages_go_back_to_the_system():
    """Large blocks freed between live small ones in a script thread's heap stay in the process's
    RSS until ``release_freed_memory`` hands them back (glibc)."""
    if cache._MALLOC_TRIM is None:
        pytest.skip("the C library has no malloc_trim")
    out = subprocess.run(
        [sys.executable, "-c", _FRAGMENT_THEN_TRIM], capture_output=True, text=True, check=True, timeout=300
    )
    assert int(out.stdout.split()[-1]) > 60 * 2**20


def test_the_decorator_keys_by_the_plain_arguments_and_says_when_a_result_is_not_kept(monkeypatch):
    store = cache.SharedCache(1000)
    monkeypatch.setattr(cache, "store", lambda: store)
    said = []
    monkeypatch.setattr(cache.st, "caption", said.append)
    calls = []

    @cache.cached("zeros")
    def zeros(n, _unhashed):
        calls.append(n)
        return np.zeros(n)

    assert zeros(10_000, object()).shape == (10_000,)  # 80 kB > the 1000-byte cap
    assert len(said) == 1 and "Not kept" in said[0] and len(store) == 0
    zeros(10, object())
    zeros(10, object())  # another unhashed argument, same key: from the store
    assert calls == [10_000, 10] and ("zeros", 10) in store and len(said) == 1


def test_at_most_max_computing_keys_compute_at_once_and_waiters_are_told():
    """Six sessions with six different keys: never more than two computations at a time (the
    working memory of a run is bounded with them), and each session that had to wait was told."""
    store = cache.SharedCache(2**30, max_computing=2)
    lock = threading.Lock()
    running, peak, waited = [0], [0], set()

    def compute():
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.3)
        with lock:
            running[0] -= 1
        return np.zeros(3)

    def session(i):
        store.get_or_compute(("run", i), compute, lambda: waited.add(i))

    threads = [threading.Thread(target=session, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert peak[0] == 2 and len(store) == 6
    assert len(waited) >= 4, "four sessions at least waited for a turn"


def test_a_waiting_session_that_closes_stops_waiting_and_frees_no_turn_it_did_not_hold():
    store = cache.SharedCache(2**30, max_computing=1)
    release = threading.Event()
    holding = threading.Event()

    def slow():
        holding.set()
        release.wait(10)
        return np.zeros(1)

    holder = threading.Thread(target=store.get_or_compute, args=("a", slow))
    holder.start()
    holding.wait(10)

    def closed_tab():
        raise StopException()

    with pytest.raises(StopException):
        store.get_or_compute("b", lambda: np.ones(1), closed_tab)
    release.set()
    holder.join(10)
    assert "b" not in store and "a" in store
    # The one turn is free again: a later computation runs at once.
    assert store.get_or_compute("c", lambda: np.ones(2), closed_tab)[0] == 1.0


def test_the_wait_notice_says_so_once_and_is_cleared(monkeypatch):
    shown = []

    class Slot:
        def info(self, text, icon=None):
            shown.append(text)

        def empty(self):
            shown.append("cleared")

    monkeypatch.setattr(cache.st, "empty", Slot)
    notice = cache._WaitNotice(2)
    notice.tick()
    notice.tick()
    notice.clear()
    assert len(shown) == 2 and "at most 2 results at once" in shown[0] and shown[1] == "cleared"
    monkeypatch.setattr(cache, "session_active", lambda: False)
    with pytest.raises(StopException):
        notice.tick()
