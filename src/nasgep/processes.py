"""Child processes end with the process that started them, even when it is killed with
``kill -9`` (no clean-up runs then): an orphan would hold its memory, and a search worker
would keep writing into a folder whose lock its parent no longer holds. Used by the
search's worker processes and by every DataLoader's worker processes
(:func:`nasgep.data.batches`); and how a search's workers take Ctrl-C, SIGTERM and
progress bars."""
from __future__ import annotations

import contextlib
import functools
import os
import signal
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


@contextlib.contextmanager
def ctrl_c_ignored(on_main: bool):
    """Start worker processes (multiprocessing's) that ignore SIGINT, while a Ctrl-C that
    this process gets meanwhile takes effect once they are started. A Ctrl-C reaches the
    whole process group: the search process stops its workers itself
    (:meth:`nasgep.search.evaluator.ProcessExecutor.close`), while a worker interrupted on
    its own printed a KeyboardInterrupt traceback, from wherever it was (importing torch,
    unpickling its job).

    SIGINT is blocked in this thread while the workers start: the mask is inherited across
    fork and exec, so a worker starts with it blocked and ignores it for good in
    :func:`ignore_held_ctrl_c` (a Ctrl-C held until then is dropped). In this process a
    handler only records a Ctrl-C, which is raised again afterwards: ignored here too, a
    Ctrl-C in the 5-12 ms the workers take to start was lost, and one more press was
    needed. Both block and handler are needed: a signal to the process goes to any thread
    that does not block it."""
    if (not on_main     # only the main thread may set handlers; such workers keep the default
            or signal.getsignal(signal.SIGINT) is signal.SIG_IGN     # `nohup`: inherited as it is
            or not hasattr(signal, "pthread_sigmask")):
        with _sigint_ignored(on_main):
            yield
        return
    # starting the resource tracker (at the first worker) unblocks SIGINT and SIGTERM
    # whatever was blocked before: start it first
    from multiprocessing import resource_tracker

    resource_tracker.ensure_running()
    pressed = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: pressed.append(signum))
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        try:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)    # a held Ctrl-C is recorded here
        finally:    # a SIGTERM handled right after the unmask still gets the old handler back
            signal.signal(signal.SIGINT, previous)
    if pressed:
        signal.raise_signal(signal.SIGINT)      # the handler runs now, as for a Ctrl-C


@contextlib.contextmanager
def _sigint_ignored(on_main: bool):
    if not on_main:
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def ignore_held_ctrl_c() -> None:
    """In a worker started under :func:`ctrl_c_ignored`, first thing: SIGINT, blocked since
    the worker started, is ignored from now on (a Ctrl-C held meanwhile is dropped).
    Elsewhere (a worker started from another thread) nothing changes."""
    if hasattr(signal, "pthread_sigmask") and signal.SIGINT in signal.pthread_sigmask(signal.SIG_BLOCK, ()):
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


def unwind_on_sigterm() -> None:
    """SIGTERM (:meth:`nasgep.search.evaluator.ProcessExecutor.close` stopping a busy
    worker, or scancel) ends a search worker by unwinding, once: its DataLoader stops its
    own workers and multiprocessing releases their queues. Killed outright, it left 28
    named semaphores, and the resource tracker warned about them after the search's last
    line."""

    def stop(signum, frame):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)    # a second one must not cut the unwinding short
        raise _Unwind(128 + signum)

    # raised where Python ignores exceptions (a __del__, a generator finalized by the
    # garbage collector: a DataLoader's batches), it was printed as 'Exception ignored
    # in ...' and SIGTERM stayed ignored: the worker trained on, and close() waited 10 s
    # for it before killing it. Such a one is raised again, once that code has ended (a
    # signal raised here would be handled here, and ignored again)
    previous_hook = sys.unraisablehook

    def again() -> None:
        time.sleep(0.01)
        os.kill(os.getpid(), signal.SIGTERM)

    def ignored(unraisable) -> None:
        if isinstance(unraisable.exc_value, _Unwind) and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, stop)
            threading.Thread(target=again, daemon=True).start()
            return
        previous_hook(unraisable)

    sys.unraisablehook = ignored
    signal.signal(signal.SIGTERM, stop)


class _Unwind(SystemExit):
    """A worker's SIGTERM (:func:`unwind_on_sigterm`)."""


def bars_locked_between_threads() -> None:
    """A worker's progress bars (a candidate's epochs, never shown in a worker) take tqdm's
    lock, which by default includes a lock between processes: a POSIX semaphore that the
    resource tracker watches. A worker ended by SIGTERM (scancel, Snakemake, a kill of the
    process group) left it behind, and after the search's one line the tracker printed
    'There appear to be 2 leaked semaphore objects to clean up at shutdown'. A worker's
    bars need a lock between its own threads only."""
    from tqdm import tqdm

    tqdm.set_lock(threading.RLock())
