"""Where a submission's code runs under ``make grade``: a confined process behind a door.

:class:`ConfinedDoor` starts the student's side (:mod:`descent.grading.student`) through
:mod:`descent.grading.jail` in its own PID, mount, network, IPC and UTS namespaces, with an
allow-listed root (the course is not in it), cgroups for memory and processes when this
machine has them, rlimits otherwise, and no privileges. It holds the student's functions and
nothing of the grader: the grade cells, hidden tests, references and expected values stay in
the grader's process (:mod:`descent.grading.trusted`), which sends inputs and receives plain
data (:mod:`descent.grading.door`).

Statuses come from what this side observes, never from what the student's code prints:

- ``timeout``: this side's clock passed the cell or notebook limit; the namespace is killed;
- ``memory``: the job's memory cgroup counted an out-of-memory kill;
- ``failed``: the process ended by itself (``os._exit``, a crash, a signal), or broke the
  protocol.

Ending a job kills PID 1 of its namespace; the kernel then ends every process in it, daemons
included. Where namespaces are not permitted, :func:`probe` says so and the grader refuses
to run unless ``unsafe=True``, which runs the student's side as a plain child process.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import pickle
import secrets
import select
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from descent.grading import plain
from descent.grading.door import MAX_RESPONSE, Door, DoorClosed, parse_answer

MIB = 2**20
CGROUP_ROOT = Path("/sys/fs/cgroup")
CGROUP_PARENT = "descent-grading"
SYSTEM_PATHS = ("/usr", "/lib", "/lib64", "/lib32", "/libx32", "/bin", "/sbin")
ETC_FILES = ("ld.so.cache", "ld.so.conf", "ld.so.conf.d")
STARTUP_SECONDS = 120.0
MEMORY_POLL = 0.2          # seconds between looks at the job's memory while it computes


@dataclass(frozen=True)
class Limits:
    """What one submission may use. Seconds, MiB and counts; every value must be positive."""

    notebook_seconds: float = 600.0   # the whole notebook, grade cells included
    cell_seconds: float = 120.0       # one cell, or one test cell with all its calls
    memory_mb: int = 4096             # the job's memory (cgroup), or each process's address space
    processes: int = 64               # processes and threads of the job
    disk_mb: int = 256                # /job (its working folder and HOME), a tmpfs
    tmp_mb: int = 64                  # /tmp and /dev/shm, each a tmpfs
    file_mb: int = 256                # one file written (RLIMIT_FSIZE)
    submission_mb: int = 32           # the submitted notebook file

    def __post_init__(self):
        for name, value in asdict(self).items():
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"Limits.{name} must be a positive number, got {value!r}")


@dataclass(frozen=True)
class Confinement:
    """What this machine lets the grader do to confine a submission."""

    namespaces: bool          # PID, mount, network, IPC, UTS namespaces and the jail work
    user_namespace: bool      # … inside a user namespace (the grader is not root)
    cgroup: str | None        # "v1" or "v2" when memory and process cgroups can be made
    unsafe: bool = False      # no namespaces, and the instructor said to go on anyway
    note: str = ""


# -- cgroups ------------------------------------------------------------------------------------

class Cgroup:
    """The job's memory and process limits, covering every process it starts."""

    def __init__(self, version: str, name: str, limits: Limits):
        self.version, self.name = version, name
        if version == "v1":
            self.memory = CGROUP_ROOT / "memory" / CGROUP_PARENT / name
            self.pids = CGROUP_ROOT / "pids" / CGROUP_PARENT / name
            self.dirs = (self.memory, self.pids)
        else:
            self.memory = self.pids = CGROUP_ROOT / CGROUP_PARENT / name
            self.dirs = (self.memory,)
        for folder in self.dirs:
            folder.mkdir(parents=True)
        limit = str(limits.memory_mb * MIB)
        if version == "v1":
            (self.memory / "memory.limit_in_bytes").write_text(limit)
            swap = self.memory / "memory.memsw.limit_in_bytes"
            if swap.exists():
                swap.write_text(limit)                 # memory + swap: no swapping out
        else:
            (self.memory / "memory.max").write_text(limit)
            swap = self.memory / "memory.swap.max"
            if swap.exists():
                swap.write_text("0")
        (self.pids / "pids.max").write_text(str(limits.processes))

    def enter(self) -> None:
        """Move the calling process in (run in the child before exec: all it starts follows)."""
        for folder in self.dirs:
            (folder / "cgroup.procs").write_text(str(os.getpid()))

    def _count(self, file: str, key: str, folder: Path) -> int:
        with contextlib.suppress(OSError, ValueError):
            for line in (folder / file).read_text().splitlines():
                name, _, value = line.partition(" ")
                if name == key:
                    return int(value)
        return 0

    def oom_kills(self) -> int:
        if self.version == "v1":
            return self._count("memory.oom_control", "oom_kill", self.memory)
        return self._count("memory.events", "oom_kill", self.memory)

    def at_limit(self) -> bool:
        """Has the job's memory reached its limit (the kernel counts it; nothing the student
        prints can)? Then it is ended at once rather than left to thrash in reclaim."""
        if self.oom_kills():
            return True
        if self.version == "v1":
            with contextlib.suppress(OSError, ValueError):
                return int((self.memory / "memory.failcnt").read_text()) > 0
            return False
        return self._count("memory.events", "max", self.memory) > 0

    def peak_mb(self) -> float | None:
        name = "memory.max_usage_in_bytes" if self.version == "v1" else "memory.peak"
        with contextlib.suppress(OSError, ValueError):
            return int((self.memory / name).read_text()) / MIB
        return None

    def process_limit_hits(self) -> int:
        return self._count("pids.events", "max", self.pids)

    def remove(self) -> None:
        """Kill what is left in it, then remove it."""
        for folder in self.dirs:
            for _ in range(50):
                with contextlib.suppress(OSError):
                    pids = [int(p) for p in (folder / "cgroup.procs").read_text().split()]
                    for pid in pids:
                        with contextlib.suppress(ProcessLookupError):
                            os.kill(pid, signal.SIGKILL)
                try:
                    folder.rmdir()
                    break
                except OSError:
                    time.sleep(0.02)


def _cgroup_version() -> str | None:
    """"v1" or "v2" when this process may make memory and pids cgroups, else None."""
    if os.geteuid() != 0:
        return None
    v1 = [CGROUP_ROOT / c for c in ("memory", "pids")]
    if all((c / "cgroup.procs").exists() and os.access(c, os.W_OK) for c in v1):
        return "v1"
    controllers = CGROUP_ROOT / "cgroup.subtree_control"
    if controllers.exists() and os.access(CGROUP_ROOT, os.W_OK):
        enabled = controllers.read_text().split()
        if "memory" in enabled and "pids" in enabled:
            return "v2"
    return None


def _prepare_cgroup_parent(version: str) -> None:
    parents = [CGROUP_ROOT / CGROUP_PARENT] if version == "v2" else \
        [CGROUP_ROOT / c / CGROUP_PARENT for c in ("memory", "pids")]
    for parent in parents:
        parent.mkdir(exist_ok=True)
        for stale in parent.glob("job-*"):       # left by a grader that was killed: empty
            if time.time() - stale.stat().st_mtime > 3600:
                with contextlib.suppress(OSError):
                    stale.rmdir()
    if version == "v2":
        (parents[0] / "cgroup.subtree_control").write_text("+memory +pids")


# -- the root the student's side sees -----------------------------------------------------------

def _library_folder() -> str:
    """The folder that holds the ``descent`` package (the repository's lib/ when editable)."""
    import descent

    return os.path.dirname(os.path.dirname(os.path.realpath(descent.__file__)))


def allowed_paths() -> tuple[list[str], list[tuple[str, str]]]:
    """(folders bound read-only, (symlink, target) pairs) of the confined root: the system,
    the Python installation and its environment, the library. Nothing of the course."""
    binds, links = [], []
    for path in SYSTEM_PATHS:
        if os.path.islink(path):
            links.append((path, os.readlink(path)))
        elif os.path.isdir(path):
            binds.append(path)
    for path in (sys.base_prefix, sys.prefix, _library_folder()):
        real = os.path.realpath(path)
        if os.path.isdir(real):
            binds.append(real)
    for name in ETC_FILES:
        if os.path.exists(f"/etc/{name}"):
            binds.append(f"/etc/{name}")
    binds = sorted(set(binds), key=len)
    kept = [p for p in binds if not any(p != q and p.startswith(q.rstrip("/") + "/")
                                        for q in binds)]
    return kept, links


def _python() -> str:
    """This environment's interpreter at its real path (a venv reached through a link, as a
    fresh clone sharing a venv does, is bound at its real place)."""
    return os.path.join(os.path.realpath(sys.prefix), "bin", os.path.basename(sys.executable))


def student_environment() -> dict[str, str]:
    """The student's side's whole environment: an allow-list, nothing of the grader's."""
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/job/home", "TMPDIR": "/tmp",
           "LANG": "C.UTF-8", "TZ": "UTC", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "OPENBLAS_NUM_THREADS": "1", "MPLBACKEND": "Agg",
           "MPLCONFIGDIR": "/job/.matplotlib", "XDG_CACHE_HOME": "/job/.cache",
           "NBGRADER_EXECUTION": "autograde", "PYTHONDONTWRITEBYTECODE": "1",
           "PYTHONHASHSEED": "0"}
    if "CUDA_VISIBLE_DEVICES" in os.environ:
        env["CUDA_VISIBLE_DEVICES"] = os.environ["CUDA_VISIBLE_DEVICES"]
    return env


def _devices() -> list[str]:
    """GPU device nodes, bound when this machine has them (CUDA grading)."""
    return sorted(p.name for p in Path("/dev").glob("nvidia*") if not p.is_dir())


# -- the door ------------------------------------------------------------------------------------

class ConfinedDoor(Door):
    """The student's side in a confined process (see the module doc). One per notebook."""

    def __init__(self, limits: Limits, confinement: Confinement):
        super().__init__()
        self.limits, self.confinement = limits, confinement
        self.started = time.monotonic()
        self.deadline = self.started + limits.notebook_seconds
        self.cell_deadline, self.label = self.deadline, "the start"
        self.closed: DoorClosed | None = None
        self.cgroup: Cgroup | None = None
        self.notes: list[str] = []
        self._work = tempfile.mkdtemp(prefix="descent-job-")
        requests_r, self._requests = map(_high, os.pipe())
        self._answers, answers_w = map(_high, os.pipe())
        try:
            self.process = self._spawn(requests_r, answers_w)
        except BaseException:
            self.process = None
            self.close()              # its cgroup, its folder and this side's pipe ends
            raise
        finally:
            os.close(requests_r)
            os.close(answers_w)
        os.set_blocking(self._requests, False)
        self.ready = False            # the student's side imports while the grader prepares

    def wait_ready(self) -> None:
        """Wait for the student's side to say it runs (once; the first request does it)."""
        if self.ready:
            return
        answer = self._receive(self.started + STARTUP_SECONDS, "the start")
        if "ready" not in answer:
            raise self._close("failed", f"the confined process did not start: "
                                        f"{plain.bounded(answer.get('jail', answer), 300)}")
        self.ready = True
        self.inside_pid = answer["ready"]

    def serves(self, limits: Limits, confinement: Confinement) -> bool:
        """Was this door started for these limits and this confinement, and is it alive?"""
        return (self.limits == limits and self.confinement == confinement
                and self.closed is None and self.process.poll() is None)

    def _spawn(self, requests_r: int, answers_w: int) -> subprocess.Popen:
        confinement, limits = self.confinement, self.limits
        if confinement.cgroup:
            self.cgroup = Cgroup(confinement.cgroup, f"job-{secrets.token_hex(6)}", limits)
        fresh_uid = confinement.namespaces and not confinement.user_namespace
        uid = 100_000 + secrets.randbelow(1 << 24) if fresh_uid else 0
        rlimits = {"RLIMIT_NOFILE": 1024, "RLIMIT_CORE": 0,
                   "RLIMIT_FSIZE": limits.file_mb * MIB}
        if self.cgroup is None:
            rlimits["RLIMIT_AS"] = limits.memory_mb * MIB
            # per user: a fresh user has none yet; else the grader's own processes count too
            rlimits["RLIMIT_NPROC"] = limits.processes + (
                0 if fresh_uid else _processes_of(os.getuid()))
        pass_fds = (requests_r, answers_w)
        env = {**student_environment(), "DESCENT_GRADING_FDS": f"{requests_r},{answers_w}"}
        if not confinement.namespaces:                 # --unsafe: a plain child process
            return subprocess.Popen(
                [sys.executable, "-I", "-P", "-m", "descent.grading.student"],
                env=env, cwd=self._work, stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                pass_fds=pass_fds, preexec_fn=_unsafe_child(rlimits, self.cgroup))
        binds, links = allowed_paths()
        root = os.path.join(self._work, "root")
        os.mkdir(root)
        config = {"root": root, "uid": uid, "binds": binds, "links": links,
                  "etc": {"passwd": f"root:x:0:0::/:/bin/sh\nstudent:x:{uid}:{uid}::/job/home:"
                                    "/bin/sh\n",
                          "group": f"root:x:0:\nstudent:x:{uid}:\n",
                          "hosts": "127.0.0.1 localhost\n"},
                  "tmpfs": {"job_mb": limits.disk_mb, "job_inodes": 20_000,
                            "tmp_mb": limits.tmp_mb, "tmp_inodes": 2_000},
                  "devices": _devices(), "rlimits": rlimits, "python": _python(),
                  "env": env, "protocol": list(pass_fds)}
        from descent.grading import jail

        argv = ["unshare", "--pid", "--fork", "--kill-child", "--mount", "--net", "--ipc",
                "--uts"]
        if confinement.user_namespace:
            argv += ["--user", "--map-root-user"]
        argv += ["--", sys.executable, "-I", "-P", jail.__file__, json.dumps(config)]
        return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True,
                                pass_fds=pass_fds,
                                preexec_fn=self.cgroup.enter if self.cgroup else None)

    # -- the protocol -------------------------------------------------------------------------

    def begin(self, label: str) -> None:
        self.label = label
        self.cell_deadline = min(self.deadline, time.monotonic() + self.limits.cell_seconds)

    def _send(self, request: tuple) -> dict:
        if self.closed is not None:
            raise self.closed
        self.wait_ready()
        data = pickle.dumps(request, protocol=5)
        self._write(len(data).to_bytes(4, "big") + data)
        return self._receive(self.cell_deadline, self.label)

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            left = self.cell_deadline - time.monotonic()
            if left <= 0 or not select.select([], [self._requests], [], left)[1]:
                raise self._timeout()
            try:
                view = view[os.write(self._requests, view):]
            except BrokenPipeError:
                raise self._ended() from None

    def _receive(self, deadline: float, label: str) -> dict:
        header = self._read(4, deadline)
        size = int.from_bytes(header, "big")
        if size > MAX_RESPONSE:
            raise self._close("failed", f"the confined process broke the protocol during "
                                        f"{label} (a frame of {size} bytes)")
        try:
            return parse_answer(self._read(size, deadline))
        except plain.ProtocolError as err:
            raise self._close("failed", f"the confined process broke the protocol during "
                                        f"{label}: {err}") from None

    def _read(self, size: int, deadline: float) -> bytes:
        chunks, left = [], size
        while left:
            wait = deadline - time.monotonic()
            if wait <= 0:
                raise self._timeout()
            if not select.select([self._answers], [], [], min(wait, MEMORY_POLL))[0]:
                if self.cgroup is not None and self.cgroup.at_limit():
                    raise self._out_of_memory()
                continue
            chunk = os.read(self._answers, min(left, 1 << 20))
            if not chunk:
                raise self._ended()
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)

    def _timeout(self) -> DoorClosed:
        if not self.ready:
            return self._close("failed", f"the confined process did not start within "
                                         f"{STARTUP_SECONDS:g} s")
        if time.monotonic() >= self.deadline:
            return self._close("timeout", f"the notebook ran longer than "
                                          f"{self.limits.notebook_seconds:g} s (notebook limit, "
                                          f"in {self.label}); stopped")
        return self._close("timeout", f"{self.label} ran longer than "
                                      f"{self.limits.cell_seconds:g} s (cell limit); stopped")

    def _ended(self) -> DoorClosed:
        """The student's side is gone: say why from what the kernel reports."""
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=5)
        if self.cgroup is not None and self.cgroup.at_limit():
            return self._out_of_memory()
        code = self.process.returncode
        how = ("still running" if code is None else f"killed by signal {_signal_name(code)}"
               if code > 128 or code < 0 else f"exit status {code}")
        return self._close("failed", f"the student's process ended during {self.label} "
                                     f"({how}: os._exit, a crash or a signal)")

    def _out_of_memory(self) -> DoorClosed:
        return self._close("memory", f"{self.label} used the whole memory limit of "
                                     f"{self.limits.memory_mb} MiB; stopped")

    def _close(self, status: str, reason: str) -> DoorClosed:
        self.close()
        self.closed = DoorClosed(status, reason)
        return self.closed

    def close(self) -> None:
        """End the job: PID 1 of its namespace dies, and with it every process left."""
        if getattr(self, "process", None) is not None and self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.process.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=10)
        for fd in ("_requests", "_answers"):
            value = getattr(self, fd, None)
            if value is not None:
                with contextlib.suppress(OSError):
                    os.close(value)
                setattr(self, fd, None)
        if self.cgroup is not None:
            hits = self.cgroup.process_limit_hits()
            if hits:
                self.notes.append(f"the notebook hit the limit of {self.limits.processes} "
                                  f"processes {hits} time(s)")
            self.peak_mb = self.cgroup.peak_mb()
            self.cgroup.remove()
            self.cgroup = None
        import shutil

        shutil.rmtree(self._work, ignore_errors=True)


def _high(fd: int) -> int:
    """``fd`` moved to a number above the standard streams (the child's are replaced)."""
    import fcntl

    high = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
    os.close(fd)
    return high


def _signal_name(code: int) -> str:
    number = code - 128 if code > 128 else -code
    with contextlib.suppress(ValueError):
        return signal.Signals(number).name
    return str(number)


def _processes_of(uid: int) -> int:
    count = 0
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                count += entry.stat().st_uid == uid
    return count


def _unsafe_child(rlimits: dict, cgroup: Cgroup | None):
    import resource

    def setup():                    # in the child, before exec
        if cgroup is not None:
            cgroup.enter()
        for name, value in rlimits.items():
            resource.setrlimit(getattr(resource, name), (value, value))
    return setup


# -- what this machine permits --------------------------------------------------------------------

_PROBED: dict[bool, Confinement] = {}
_PROBE_LOCK = threading.Lock()         # threads of one Dask worker may all probe at first


def probe(unsafe: bool = False, ahead: Limits | None = None) -> Confinement:
    """Try the confinement here (once per process): a confined student's side must start and
    answer. Where it cannot, the result says why; ``unsafe`` then allows a plain process.
    ``ahead``: the limits of the notebooks this process grades next: a student's side for the
    first is started now (:func:`start_ahead`), or the probe's own kept when its limits match."""
    with _PROBE_LOCK:
        if unsafe not in _PROBED:
            _PROBED[unsafe], door = _probe(unsafe)
            if door is not None and door.limits == ahead:     # what the probe started is kept
                door.confinement = _PROBED[unsafe]
                start_ahead(ahead, door.confinement, door)
            elif door is not None:
                door.close()
        result = _PROBED[unsafe]
    if ahead is not None and (result.namespaces or result.unsafe):
        start_ahead(ahead, result)
    return result


def _probe(unsafe: bool) -> tuple[Confinement, ConfinedDoor | None]:
    version = _cgroup_version()
    if version:
        try:
            _prepare_cgroup_parent(version)
        except OSError:
            version = None
    user = os.geteuid() != 0
    candidate = Confinement(True, user, version)
    problem, door = _try(candidate)
    if problem and version:                      # cgroups refused: rlimits instead
        candidate = Confinement(True, user, None)
        retried, door = _try(candidate)
        problem = retried and problem
    if not problem:
        memory = (f"memory and processes limited by {version} cgroups" if candidate.cgroup
                  else "memory and processes limited by rlimits only")
        who = ("in a user namespace, no capabilities" if user
               else "as a fresh unprivileged user")
        return Confinement(True, user, candidate.cgroup, note=(
            f"confined: own PID, mount, network, IPC namespaces; allow-listed read-only root "
            f"(the course hidden); runs {who}; {memory}")), door
    if unsafe:
        return Confinement(False, False, version, True, note=(
            f"UNSAFE: no confinement ({problem}); student code ran as a plain process with "
            "the grader's rights, only its environment and limits restricted")), None
    return Confinement(False, False, version, False, note=f"cannot confine: {problem}"), None


def _try(confinement: Confinement) -> tuple[str | None, ConfinedDoor | None]:
    """Why a confined student's side does not start and answer here (None when it does), and
    its door when it does: started, and nothing run in it but an empty cell (which defines
    nothing), so that it can serve a notebook as a new one would."""
    try:
        door = ConfinedDoor(Limits(), confinement)
    except (OSError, subprocess.SubprocessError) as err:
        return f"{type(err).__name__}: {err}", None
    try:
        door.begin("the probe")
        error = door.run_cell("probe", "pass")     # a request and its answer, through IPython
        if error or door.inside_pid <= 1:           # PID 1 of its namespace is the jail's
            door.close()
            return (f"the probe's cell raised {error}" if error else
                    f"the student's side runs as PID {door.inside_pid} of its namespace"), None
    except DoorClosed as closed:                 # the door is closed already
        return closed.reason, None
    except BaseException as err:
        door.close()
        if not isinstance(err, (OSError, subprocess.SubprocessError)):
            raise
        return f"{type(err).__name__}: {err}", None
    return None, door


# -- a student's side started ahead ------------------------------------------------------------
# Its start (the student's side imports IPython and torch: about 1 s of CPU) then overlaps the
# grader's own preparation (the probe, the template's nbgrader run) instead of a notebook's
# grading. Nothing has run in it but the probe's empty cell: it is a new one, only older.
# (Worker processes are spawned, never forked: none inherits it, nor ends it at exit.)

_AHEAD: list[ConfinedDoor] = []              # at most one
_AHEAD_LOCK = threading.Lock()


def start_ahead(limits: Limits, confinement: Confinement,
                door: ConfinedDoor | None = None) -> None:
    """Have a student's side with these limits started for this process's next
    :func:`open_door` (``door``: that one, fresh), unless one is already. One that cannot be
    started is not: the job then starts its own, and says what went wrong."""
    with _AHEAD_LOCK:
        if door is None and _AHEAD and _AHEAD[0].serves(limits, confinement):
            return
    if door is None:
        try:
            door = ConfinedDoor(limits, confinement)
        except (OSError, subprocess.SubprocessError):
            return
    with _AHEAD_LOCK:
        stale, _AHEAD[:] = list(_AHEAD), [door]
    for old in stale:
        old.close()


def open_door(limits: Limits, confinement: Confinement) -> ConfinedDoor:
    """The student's side for one notebook: the one started ahead when it has these limits
    and this confinement, else a new one."""
    with _AHEAD_LOCK:
        door = _AHEAD.pop() if _AHEAD else None
    if door is not None and door.serves(limits, confinement):
        door.started = time.monotonic()              # its clocks start with the notebook
        door.deadline = door.cell_deadline = door.started + limits.notebook_seconds
        return door
    if door is not None:
        door.close()
    return ConfinedDoor(limits, confinement)


@atexit.register
def close_ahead() -> None:
    """End the student's side started ahead, if no notebook took it."""
    with _AHEAD_LOCK:
        doors, _AHEAD[:] = list(_AHEAD), []
    for door in doors:
        door.close()
