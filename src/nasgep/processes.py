"""Child processes end with the process that started them, even when it is killed with
``kill -9`` (no clean-up runs then): an orphan would hold its memory, and a search worker
would keep writing into a folder whose lock its parent no longer holds. Used by the
search's worker processes and by every DataLoader's worker processes
(:func:`nasgep.data.batches`)."""
from __future__ import annotations

import functools
import os
import sys
import threading
import time


def die_with_parent(parent: int, parent_thread_is_main: bool = True) -> None:
    """End this process when ``parent`` dies. Linux: the kernel sends SIGKILL
    (``PR_SET_PDEATHSIG``); elsewhere a thread looks for the parent every second. The
    kernel's signal follows the thread that started the child, so a child started from
    another thread than the main one (which may end first) gets the watchdog too."""
    if sys.platform.startswith("linux") and parent_thread_is_main:
        import ctypes
        import signal

        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)
        if os.getppid() != parent:   # it died before the request was made
            os._exit(1)
        return

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


def _watch_sentinel(sentinel) -> None:
    """End this process when ``sentinel`` (a connection that the parent holds open) reads
    ready: its parent ended."""
    from multiprocessing.connection import wait

    def watch() -> None:
        wait([sentinel])
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


def _loader_worker_init(parent: int, parent_thread_is_main: bool, worker_id: int) -> None:
    import multiprocessing

    if os.getppid() != parent:
        # not forked or spawned by the loader's process itself: started by a fork server
        # (Python 3.14's default on Linux, or multiprocessing_context="forkserver"), whose
        # child it is. multiprocessing still knows the process that started it, and the
        # pipe that process holds open; the kernel's signal would follow the fork server
        starter = multiprocessing.parent_process()
        if starter is not None and starter.pid == parent and starter.sentinel is not None:
            _watch_sentinel(starter.sentinel)
            return
    die_with_parent(parent, parent_thread_is_main)


def loader_worker_init():
    """A DataLoader's ``worker_init_fn`` for loaders made in this process: its workers end
    with it. PyTorch's own check (every 5 s) missed a parent that died while the worker
    started, and a search worker ended by SIGTERM left such a DataLoader worker running."""
    return functools.partial(_loader_worker_init, os.getpid(),
                             threading.current_thread() is threading.main_thread())
