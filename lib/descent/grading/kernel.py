"""The grading kernel: ipykernel behind resource limits, hidden paths and no network.

``python -m descent.grading.kernel [--memory-mb N] [--file-mb M] [--hide PATH ...]
[--confine BASE --keep DIR] -f CONNECTION_FILE`` sets the limits, hides the paths, then runs
ipykernel in this same process (no wrapper: jupyter_client signals and kills the kernel itself).
The grading kernelspec runs this file as ``python -P .../kernel.py``, which does the same
without importing the package :mod:`descent.grading` first (its import starts the grading
record, which must start inside the kernel's IPython).

- ``RLIMIT_AS`` = ``--memory-mb`` MiB of address space: an allocation beyond it raises
  ``MemoryError`` (torch: "can't allocate memory") instead of swapping the machine to death.
  torch + numpy + descent.grading + ipykernel peak near 0.8 GiB of address space here
  (VmPeak), so 4096 MiB leaves the assignments ample room.
- ``RLIMIT_FSIZE`` = ``--file-mb`` MiB per written file, ``RLIMIT_CORE`` = 0.
- ``--hide``: a directory gets an empty tmpfs mounted over it, a file gets /dev/null bound over
  it, so the student's code cannot read the hidden tests or write a gradebook. ``--confine
  BASE --keep DIR`` hides every other job's folder under the shared temp folder ``BASE`` (a
  tmpfs over ``BASE``, then ``DIR`` bound back in place), so a kernel cannot read or write
  another student's record; then every other mount is made read-only, so the kernel writes
  only in its own job folder. Mounting needs the mount namespace that ``unshare -rmn`` (the
  kernelspec's argv) gives; ``unshare -n`` also leaves the kernel without network (the kernel
  manager talks to it over ``ipc`` sockets). Without namespaces the limits still apply and
  nothing is hidden: the classroom grader says so in its summary.
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import os
import resource
import sys

_MS_RDONLY, _MS_NOSUID, _MS_NODEV, _MS_BIND, _MS_REC = 1, 2, 4, 4096, 16384
_MS_REMOUNT = 32
# Per-mount flags a user namespace must keep when it remounts (they are locked).
_KEPT_FLAGS = {"nosuid": 2, "nodev": 4, "noexec": 8, "noatime": 1024, "nodiratime": 2048,
               "relatime": 1 << 21, "strictatime": 1 << 24}
_PSEUDO = ("/proc", "/sys", "/dev")
MIB = 2**20


def _libc():
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong,
                           ctypes.c_char_p]
    return libc


def _mount(source: str, target: str, fstype: str | None, flags: int, data: str | None) -> None:
    libc = _libc()
    if libc.mount(source.encode(), target.encode(), fstype.encode() if fstype else None, flags,
                  data.encode() if data else None) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"mount {source} on {target}: {os.strerror(errno)}")


def hide(path: str) -> None:
    """Hide ``path`` from this process and its children (needs a private mount namespace)."""
    if os.path.isdir(path):
        _mount("tmpfs", path, "tmpfs", _MS_NOSUID | _MS_NODEV | _MS_RDONLY, "size=4k,mode=0555")
    elif os.path.exists(path):
        _mount("/dev/null", path, None, _MS_BIND, None)


def confine(base: str, keep: str) -> None:
    """Hide everything under ``base`` except ``keep`` (a folder inside it)."""
    keep_fd = os.open(keep, os.O_RDONLY | os.O_DIRECTORY)
    cwd = os.getcwd()
    _mount("tmpfs", base, "tmpfs", _MS_NOSUID | _MS_NODEV, "size=64k,mode=0755")
    os.makedirs(keep, exist_ok=True)
    # The folder is still reachable through the descriptor opened before the tmpfs covered it.
    _mount(f"/proc/self/fd/{keep_fd}", keep, None, _MS_BIND | _MS_REC, None)
    os.close(keep_fd)
    os.chdir(cwd)  # re-resolve the working directory through the new mounts


def read_only_except(keep: str, writable: list[str]) -> None:
    """Every mount read-only except ``keep`` (this job's folder, bound by :func:`confine`),
    the ``writable`` folders and the pseudo-filesystems: the student's code writes nowhere
    else (the instructor's home, other courses, /tmp)."""
    for path in writable:                         # a mount of its own, left as it is below
        _mount(path, path, None, _MS_BIND | _MS_REC, None)
    keep_all = [keep, *writable]
    with open("/proc/self/mountinfo") as info:
        mounts = [(fields[4], fields[5]) for fields in (line.split() for line in info)]
    for target, options in sorted(set(mounts), key=lambda m: len(m[0])):
        if any(target == k or target.startswith(k + "/") for k in keep_all) \
                or target.startswith(_PSEUDO) or "\\" in target:
            continue
        flags = _MS_REMOUNT | _MS_BIND | _MS_RDONLY
        flags |= sum(_KEPT_FLAGS.get(option, 0) for option in options.split(","))
        try:
            _mount("none", target, None, flags, None)
        except OSError:
            pass      # a mount this namespace may not change stays as it was


def limit(memory_mb: int, file_mb: int) -> None:
    resource.setrlimit(resource.RLIMIT_AS, (memory_mb * MIB, memory_mb * MIB))
    resource.setrlimit(resource.RLIMIT_FSIZE, (file_mb * MIB, file_mb * MIB))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def parse(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(prog="python -m descent.grading.kernel")
    parser.add_argument("--memory-mb", type=int, default=4096)
    parser.add_argument("--file-mb", type=int, default=256)
    parser.add_argument("--hide", action="append", default=[])
    parser.add_argument("--confine", default=None, help="shared temp folder of all jobs")
    parser.add_argument("--keep", default=None, help="this job's folder under --confine")
    parser.add_argument("--writable", action="append", default=[],
                        help="a folder the kernel may write besides --keep")
    args, rest = parser.parse_known_args(argv)
    for name in ("memory_mb", "file_mb"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if (args.confine is None) != (args.keep is None):
        parser.error("--confine and --keep go together")
    return args, rest


def main(argv: list[str] | None = None) -> None:
    args, rest = parse(sys.argv[1:] if argv is None else argv)
    # Confine first: the paths to hide inside this job's folder resolve through the new mounts.
    if args.confine:
        confine(args.confine, args.keep)
    for path in args.hide:
        hide(path)
    if args.confine:
        read_only_except(args.keep, args.writable)
    limit(args.memory_mb, args.file_mb)
    from ipykernel import kernelapp

    kernelapp.launch_new_instance(argv=rest)


if __name__ == "__main__":
    main()
