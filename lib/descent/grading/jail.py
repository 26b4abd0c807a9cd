"""The first moments of a confined process: its own root, its limits, then the student's side.

:mod:`descent.grading.confine` runs this file as ``python -I -P jail.py CONFIG`` inside new
PID, mount, network, IPC and UTS namespaces (``unshare``, plus a user namespace when the
grader is not root), as PID 1 of its PID namespace. It uses the standard library only, and
it never runs the student's code itself:

1. **An allow-listed root.** A fresh tmpfs becomes ``/``. Only what Python, torch and the
   library need is bound into it, read-only (``/usr``, the Python installation, the virtual
   environment, the library's folder); ``/etc`` holds a few generated files. The course
   (solutions, generators, ``.git``, gradebooks, other students) is simply not there.
   ``/job`` (the working folder and ``HOME``), ``/tmp``, ``/run``, ``/dev/shm`` and
   ``/dev/mqueue`` are fresh tmpfs with size and inode limits (POSIX queues themselves live
   in the job's own IPC namespace); ``/dev`` has the harmless devices only; ``/proc`` shows
   this PID namespace. No host filesystem socket is reachable: none is mounted.
2. **Limits.** Open files, file size, no core dumps; address space and process count by
   rlimit when the grader has no cgroup for them (it then sets ``memory`` and ``pids``
   cgroups before this process starts, and they cover every descendant).
3. **No privileges.** The student's side runs as a fresh unprivileged user (grader is root)
   or, in a user namespace, with every capability dropped, and with ``no_new_privs``.
4. **PID 1 stays.** It waits for the student's side, reaps orphans, and exits with its
   status; when PID 1 ends, the kernel ends every process left in the namespace, daemons
   included.
"""

import ctypes
import ctypes.util
import json
import os
import platform
import resource
import struct
import sys

MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 16384, 1 << 18
MNT_DETACH = 2
# statvfs flags that a remount must keep (a user namespace may not clear locked ones)
ST_KEPT = {1: MS_RDONLY, 2: MS_NOSUID, 4: MS_NODEV, 8: MS_NOEXEC, 1024: 1024, 2048: 2048,
           4096: 1 << 21}
PR_SET_NO_NEW_PRIVS, PR_CAPBSET_DROP = 38, 24
SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41}.get(platform.machine())
SYS_CAPSET = {"x86_64": 126, "aarch64": 91}.get(platform.machine())
DEVICES = ("null", "zero", "full", "random", "urandom")

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong,
                        ctypes.c_char_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]


def _check(result: int, what: str) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{what}: {os.strerror(errno)}")


def mount(source, target, fstype=None, flags=0, data=None) -> None:
    _check(_libc.mount(source.encode() if source else None, target.encode(),
                       fstype.encode() if fstype else None, flags,
                       data.encode() if data else None), f"mount {source} on {target}")


def _inside(root: str, path: str) -> str:
    return os.path.join(root, path.lstrip("/"))


def bind(root: str, source: str, *, writable: bool = False) -> None:
    """``source`` at the same path in the new root, read-only unless ``writable``."""
    target = _inside(root, source)
    if os.path.isdir(source):
        os.makedirs(target, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(target), exist_ok=True)
        open(target, "a").close()
    mount(source, target, None, MS_BIND | MS_REC)
    flags = MS_REMOUNT | MS_BIND | MS_NOSUID | (0 if writable else MS_RDONLY)
    kept = os.statvfs(source).f_flag
    flags |= sum(v for k, v in ST_KEPT.items() if kept & k and v != MS_RDONLY)
    if not writable or kept & 1:
        flags |= MS_RDONLY
    if not source.startswith("/dev/"):
        flags |= MS_NODEV
    mount(None, target, None, flags)


def tmpfs(root: str, path: str, options: str, flags: int = MS_NOSUID | MS_NODEV) -> None:
    target = _inside(root, path)
    os.makedirs(target, exist_ok=True)
    mount("tmpfs", target, "tmpfs", flags, options)


def make_root(config: dict) -> None:
    """Build the allow-listed root in ``config["root"]`` and move into it."""
    root, uid = config["root"], config["uid"]
    mount(None, "/", None, MS_REC | MS_PRIVATE)          # nothing propagates back out
    mount("tmpfs", root, "tmpfs", MS_NOSUID | MS_NODEV, "size=16m,nr_inodes=4096,mode=0755")
    limits = config["tmpfs"]
    tmpfs(root, "/job", f"size={limits['job_mb']}m,nr_inodes={limits['job_inodes']},"
                        f"mode=0700,uid={uid},gid={uid}")
    tmpfs(root, "/dev", "size=64k,nr_inodes=64,mode=0755", MS_NOSUID)
    for device in DEVICES + tuple(config.get("devices", ())):
        if os.path.exists(f"/dev/{device}"):
            bind(root, f"/dev/{device}", writable=True)
    for name, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"),
                         ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2")):
        os.symlink(target, _inside(root, f"/dev/{name}"))
    for path, size in (("/tmp", limits["tmp_mb"]), ("/dev/shm", limits["tmp_mb"]),
                       ("/run", 1), ("/dev/mqueue", 1)):
        tmpfs(root, path, f"size={size}m,nr_inodes={limits['tmp_inodes']},mode=1777")
    # The read-only binds come after the fresh folders, so that a Python installation or a
    # library that lives under /tmp or /run (a clone in /tmp) is bound on top of them, not
    # hidden by them.
    for path in config["binds"]:
        bind(root, path)
    for link, target in config["links"]:
        os.makedirs(os.path.dirname(_inside(root, link)), exist_ok=True)
        os.symlink(target, _inside(root, link))
    etc = _inside(root, "/etc")
    os.makedirs(etc, exist_ok=True)
    for name, text in config["etc"].items():
        with open(os.path.join(etc, name), "w") as f:
            f.write(text)
    os.makedirs(_inside(root, "/proc"), exist_ok=True)
    try:                          # this PID namespace's processes only
        mount("proc", _inside(root, "/proc"), "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    except OSError:
        pass                      # (refused in some containers: the student's side runs without)
    for path in ("/job/home", "/job/.matplotlib", "/job/.cache"):
        os.makedirs(_inside(root, path), exist_ok=True)
        os.chown(_inside(root, path), uid, uid)
    os.chdir(root)
    _check(_libc.syscall(SYS_PIVOT_ROOT, b".", b"."), "pivot_root")
    _check(_libc.umount2(b".", MNT_DETACH), "umount the old root")
    os.chdir("/job")
    mount(None, "/", None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)


def drop_capabilities() -> None:
    """Every capability gone, for good (the student's side may stay uid 0 in its namespace)."""
    for cap in range(64):
        _libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0)
    header = (ctypes.c_uint32 * 2)(0x20080522, 0)        # _LINUX_CAPABILITY_VERSION_3
    data = (ctypes.c_uint32 * 6)()
    _check(_libc.syscall(SYS_CAPSET, header, data), "capset")


def become_student(config: dict) -> None:
    """In the child: limits, no privileges, then exec the student's side (never returns)."""
    limits = config["rlimits"]
    for name, value in limits.items():
        resource.setrlimit(getattr(resource, name), (value, value))
    os.setsid()
    if os.getuid() == 0 and config["uid"] != 0:
        os.setgroups([])
        os.setgid(config["uid"])
        os.setuid(config["uid"])
    else:
        drop_capabilities()
    _check(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")
    os.execve(config["python"], [config["python"], "-I", "-P", "-m",
                                 "descent.grading.student"], config["env"])


def _tell(config: dict, why: str, code: int) -> None:
    """Say why in the grader's framing, then end."""
    message = json.dumps({"jail": why}).encode()
    os.write(config["protocol"][1], struct.pack(">I", len(message)) + message)
    os._exit(code)


def main() -> None:
    config = json.loads(sys.argv[1])
    try:
        make_root(config)
    except OSError as err:
        _tell(config, f"cannot build the confined root: {err}", 70)
    child = os.fork()
    if child == 0:
        try:
            become_student(config)
        except OSError as err:
            _tell(config, f"cannot start the student's side: {err}", 71)
        os._exit(71)
    for fd in config["protocol"]:                      # only the student's side holds them
        os.close(fd)
    while True:                                        # reap every orphan; end with the child
        try:
            pid, status = os.wait()
        except ChildProcessError:
            os._exit(72)
        if pid == child:
            os._exit(128 + os.WTERMSIG(status) if os.WIFSIGNALED(status)
                     else os.WEXITSTATUS(status))


if __name__ == "__main__":
    main()
