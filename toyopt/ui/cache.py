"""The app's one store of computed results (runs, basin classifications, prepared files), shared by
every session and bounded by bytes.

Why not ``st.cache_data``: it keeps each entry pickled and gives every call its own unpickled copy,
so the same 30 MB run is held once in the cache and once more by every script run that uses it, and
its cap counts entries, not bytes (12 entries of the largest run a link allows are 0.4 GB before any
copy). Here an entry is held once, handed to every session as the same object (its numpy arrays
made read-only), and the least recently used entries are dropped once their bytes together exceed
``MAX_CACHE_BYTES``.

Two sessions asking for the same key at once compute it once: the second waits for the first. If
the first stops (its tab closed: ``StopException``; a widget change: a rerun), nothing is stored
and the waiting session computes it itself.

At most ``MAX_COMPUTING`` entries are computed at once, whatever the number of sessions: a run's
working memory (its chunks and their joined arrays, about twice its recorded bytes) is then bounded
as the kept entries are, and the cores are not split between more runs than there are. A session
waiting for a turn says so on its page and stops waiting when its tab closes.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import dataclasses
import functools
import inspect
import sys
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any

import numpy as np
import streamlit as st
from streamlit.runtime import Runtime
from streamlit.runtime.scriptrunner_utils.exceptions import StopException
from streamlit.runtime.scriptrunner_utils.script_run_context import get_script_run_ctx

#: Bytes of results the app keeps for all sessions together: 7 of the largest runs a link allows
#: (about 33 MB each) or 20 runs of the default preset (13 MB each). docs/robustness.md.
MAX_CACHE_BYTES = 256 * 2**20
#: Entries computed at once for all sessions together: one per core of the reference machine.
MAX_COMPUTING = 2
#: Seconds between checks, while waiting for a turn, that the waiting session is still open.
WAIT_POLL_SECONDS = 0.25


def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim``, or None where the C library has none."""
    try:
        return ctypes.CDLL(ctypes.util.find_library("c")).malloc_trim
    except (OSError, AttributeError, TypeError):
        return None


_MALLOC_TRIM = _malloc_trim()


def release_freed_memory() -> None:
    """Hand the freed pages of the C heap back to the operating system (glibc only; elsewhere
    nothing). Why: a run's temporaries and the entries the cache drops are freed into the heaps of
    the short-lived script threads, and glibc keeps those pages. Measured: 10 of the largest runs
    held 713 MB of RSS in one process, 516 MB after one trim (30 ms)."""
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)


def session_active() -> bool:
    """False once the browser session of this script run has gone away (tab closed). Outside a
    Streamlit server (tests, AppTest) there is no session to lose: True."""
    ctx = get_script_run_ctx(suppress_warning=True)
    if ctx is None or not Runtime.exists():
        return True
    return Runtime.instance().is_active_session(ctx.session_id)


def _walk(value: Any):
    """Every object reachable from ``value`` through dataclasses, dicts, lists, tuples, sets and
    object arrays, each once."""
    seen: set[int] = set()
    todo = [value]
    while todo:
        obj = todo.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        yield obj
        if not isinstance(obj, np.ndarray):
            todo.extend(_parts(obj))
        elif obj.dtype == object:
            todo.extend(obj.ravel().tolist())


def nbytes(value: Any) -> int:
    """The bytes ``value`` holds: numpy arrays' buffers, bytes and str, and ``sys.getsizeof`` of
    every other object, walking dataclasses, dicts, lists and tuples (each object counted once)."""
    # A view's getsizeof leaves out its data: an array counts at least its buffer's bytes.
    return sum(
        max(sys.getsizeof(obj), obj.nbytes) if isinstance(obj, np.ndarray) else sys.getsizeof(obj)
        for obj in _walk(value)
    )


def _parts(obj: Any) -> list:
    if isinstance(obj, dict):
        return [*obj.keys(), *obj.values()]
    if isinstance(obj, (list, tuple, set, frozenset)):
        return list(obj)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        if hasattr(obj, "__dict__"):
            return [obj.__dict__]  # the fields, and the dict that holds them
        return [getattr(obj, f.name) for f in dataclasses.fields(obj)]
    return []


def freeze(value: Any) -> Any:
    """``value`` with every numpy array in it made read-only (it is shared by all sessions)."""
    for obj in _walk(value):
        if isinstance(obj, np.ndarray):
            obj.flags.writeable = False
    return value


@dataclasses.dataclass
class _Computing:
    """One key being computed: its lock and how many callers hold or wait for it."""

    lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)
    users: int = 0


class SharedCache:
    """A least-recently-used map whose entries together hold at most ``max_bytes`` (``nbytes``),
    safe for concurrent sessions. An entry larger than ``max_bytes`` is returned but not kept. At
    most ``max_computing`` computations run at once."""

    def __init__(self, max_bytes: int, max_computing: int = MAX_COMPUTING):
        if max_bytes <= 0:
            raise ValueError(f"max_bytes must be positive, got {max_bytes}")
        if max_computing < 1:
            raise ValueError(f"max_computing must be at least 1, got {max_computing}")
        self.max_bytes = max_bytes
        self.max_computing = max_computing
        self._turns = threading.BoundedSemaphore(max_computing)
        self._entries: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self._computing: dict[Hashable, _Computing] = {}

    @property
    def bytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._entries

    def get(self, key: Hashable) -> tuple[bool, Any]:
        """(True, value) and the entry becomes the most recently used, or (False, None)."""
        with self._lock:
            if key not in self._entries:
                return False, None
            self._entries.move_to_end(key)
            return True, self._entries[key][0]

    def put(self, key: Hashable, value: Any) -> bool:
        """Keep ``value`` (frozen) under ``key``, dropping the least recently used entries until the
        total fits; False (not kept) if ``value`` alone exceeds the cap."""
        size = nbytes(freeze(value))
        with self._lock:
            if key in self._entries:
                self._bytes -= self._entries.pop(key)[1]
            if size > self.max_bytes:
                return False
            while self._bytes + size > self.max_bytes:
                self._bytes -= self._entries.popitem(last=False)[1][1]
            self._entries[key] = (value, size)
            self._bytes += size
            return True

    def get_or_compute(
        self, key: Hashable, compute: Callable[[], Any], waiting: Callable[[], None] | None = None
    ) -> Any:
        """The entry of ``key``, computed by ``compute()`` (and kept) if missing. A caller that finds
        ``key`` being computed by another waits for that and takes its value; if that computation
        raised, the caller computes it itself. A caller waiting for one of the ``max_computing``
        turns calls ``waiting()`` every WAIT_POLL_SECONDS (it may raise to stop waiting)."""
        found, value = self.get(key)
        if found:
            return value
        with self._lock:
            slot = self._computing.setdefault(key, _Computing())
            slot.users += 1
        try:
            with slot.lock:
                found, value = self.get(key)
                if found:
                    return value
                with self._turn(waiting):
                    value = compute()
                self.put(key, value)
                release_freed_memory()
                return value
        finally:
            with self._lock:
                slot.users -= 1
                if slot.users == 0:
                    del self._computing[key]

    @contextlib.contextmanager
    def _turn(self, waiting: Callable[[], None] | None):
        """Holds one of the ``max_computing`` turns while the block runs."""
        while not self._turns.acquire(timeout=WAIT_POLL_SECONDS):
            if waiting is not None:
                waiting()
        try:
            yield
        finally:
            self._turns.release()


@st.cache_resource(show_spinner=False)
def store() -> SharedCache:
    """The server process's one SharedCache (held by Streamlit across sessions and reruns)."""
    return SharedCache(MAX_CACHE_BYTES)


def cached(kind: str, spinner: str | None = None) -> Callable:
    """Decorator: calls of ``fn`` are kept in ``store()`` keyed by ``kind`` and the arguments whose
    names do not start with an underscore (Streamlit's convention for unhashed arguments).
    ``spinner``: shown while a missing entry is computed."""

    def wrap(fn: Callable) -> Callable:
        names = list(inspect.signature(fn).parameters)

        @functools.wraps(fn)
        def call(*args: Any) -> Any:
            key = (kind, *(a for n, a in zip(names, args) if not n.startswith("_")))
            cache = store()
            found, value = cache.get(key)
            if found:
                return value
            with st.spinner(spinner) if spinner else contextlib.nullcontext():
                notice = _WaitNotice(cache.max_computing)
                try:
                    value = cache.get_or_compute(key, lambda: fn(*args), notice.tick)
                finally:
                    notice.clear()
            if key not in cache:
                st.caption(
                    f"Not kept in the app's cache (at most {cache.max_bytes / 2**20:.0f} MiB for all "
                    f"sessions; this is {nbytes(value) / 2**20:.0f} MiB): it is computed again when "
                    "asked for."
                )
            return value

        return call

    return wrap


class _WaitNotice:
    """``get_or_compute``'s ``waiting`` for a script run: ``tick`` says once, in a slot of the
    page, that the result waits for a turn, and stops the script run (StopException) once its
    session has gone; ``clear`` takes the notice away when the wait is over."""

    def __init__(self, turns: int):
        self.turns = turns
        self.slot = None

    def tick(self) -> None:
        if not session_active():
            raise StopException()
        if self.slot is None:
            self.slot = st.empty()
            self.slot.info(
                f"Waiting for a turn: the app computes at most {self.turns} results at once for all "
                "its users, and others are running.",
                icon=None,
            )

    def clear(self) -> None:
        if self.slot is not None:
            self.slot.empty()
