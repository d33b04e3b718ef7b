"""The playground's sandbox: one reader's program, in a fresh bubblewrap sandbox, with its output relayed.

What a run gets (docs/adr/0016-playground-sandbox-bubblewrap.md says why it is built this way):

- a new process every time, in new mount, PID, network, IPC, UTS and cgroup
  namespaces: the network namespace has nothing in it but a loopback of its
  own, so neither the site, nor PostgreSQL, nor Redis, nor the outside world
  is reachable;
- a root filesystem that is an empty tmpfs holding, read-only, only the
  interpreter, its standard library (its site-packages masked by an empty
  directory) and the shared libraries it links; the reader's `main.py` and the
  tracer under /sandbox; a fresh /proc and a minimal /dev; a private /tmp of a
  few MiB, the only place it can write;
- an environment of four variables (bwrap --clearenv; bubblewrap adds PWD), no controlling
  terminal (--new-session), and death with the worker (the launcher's
  parent-death signal for bubblewrap, --die-with-parent for what it starts);
- an unprivileged user. When the worker runs as root, bubblewrap itself runs
  as root (so that it can bind a runtime under /root, which no other user may
  enter) and the program is started through `setpriv` as a uid of its own,
  picked per run from CODE_SANDBOX_UID_BASE: the kernel's per-user process cap
  (RLIMIT_NPROC) is not enforced for uid 0, so a fork bomb must run as a real
  unprivileged uid. Otherwise bubblewrap makes a user namespace as usual;
- rlimits on CPU seconds, address space, open files, processes plus threads,
  file size and core dumps, and a lower CPU priority (nice 10), set by a tiny
  launcher (`LAUNCHER`) between fork and exec, so that no Python code runs in
  a forked copy of the threaded worker; the launcher also joins a CPU cgroup
  that all sandboxes share at a small weight (`cpu_cgroup_procs`), so under
  load the site's own processes get the cores first;
- watched from here: the wall clock, the bytes of output (counted as they are
  read), and every 50 ms the resident memory and the number of tasks of the
  run's processes. A run past any limit is killed whole (bubblewrap's PID
  namespace init is killed, which takes every process inside with it) and the
  summary says which limit, in words.

The tracer (tracer.py beside this module, when present) writes one JSON object
per line to fd 3; `TraceRelay` checks each line before it becomes an event.
"""
from __future__ import annotations

import codecs
import json
import logging
import os
import random
import resource
import selectors
import signal
import subprocess
import sys
import sysconfig
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from demos.base import LANE_STATES
from demos.library.playground import seccomp

logger = logging.getLogger("demos.playground")

TRACER_PATH = Path(__file__).with_name("tracer.py")
SANDBOX_DIR = "/sandbox"
TRACE_FD = 3
SETPRIV = "/usr/bin/setpriv"  # util-linux: drops a root worker's sandbox to the run's own uid
OUTPUT_CHUNK_BYTES = 4096
TRACE_LINE_BYTES = 1024
MAX_LANES = 64
MAX_STATE_EVENTS = 20_000
# What the reader is told, once, when the tracer (or the relay) reaches a cap.
CAP_NOTES = {
    "lanes": f"The program made more than {MAX_LANES} tasks and threads; only the first {MAX_LANES} are drawn.",
    "states": f"The timeline stops after {MAX_STATE_EVENTS:,} changes of state; the program ran on, and its output is complete.",
}
MAX_NOTES = 20
LABEL_CHARS = 120
MAX_LINE_NUMBER = 1_000_000
STATES = LANE_STATES
LANE_TYPES = frozenset({"task", "thread"})
WATCH_EVERY_S = 0.05
PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")  # the smallest tmpfs there is, for masking site-packages
CLOCK_TICKS_PER_S = os.sysconf("SC_CLK_TCK")
# What the sandbox's environment holds (bwrap --clearenv first).
# MALLOC_ARENA_MAX: glibc reserves 64 MiB of address space per thread's arena otherwise, and a program with a
# dozen threads would then meet the memory limit long before the limit on threads.
SANDBOX_ENV = {"PATH": "/usr/bin:/bin", "HOME": "/tmp", "LANG": "C.UTF-8", "MALLOC_ARENA_MAX": "2"}
SHM_BYTES = 4 * 1024 * 1024  # /dev/shm, for multiprocessing's semaphores and small shared memory
STACK_BYTES = 8 * 1024 * 1024  # each thread's stack: with the memory limit, it bounds how many threads fit

# Runs between fork and exec of the sandbox, in a fresh single-threaded interpreter (`-I -S`): asks the kernel to
# SIGKILL it if the worker dies (bubblewrap keeps that signal, and its own --die-with-parent takes the sandbox
# down with it), moves the inherited descriptors to fixed numbers (the trace pipe must be fd 3 inside), sets
# the rlimits and a lower CPU priority (nice, and the sandboxes' CPU cgroup when there is one), then execs
# bubblewrap. argv: the worker's pid, moves ("src:dst,..."), limits ("resource:soft:hard,..."), the nice
# increment, the cgroup.procs file to join (or ""), then the command.
LAUNCHER = r"""
import ctypes, fcntl, os, resource, signal, sys
PR_SET_PDEATHSIG = 1
ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
if os.getppid() != int(sys.argv[1]):
    os._exit(1)  # the worker died before the request above: nobody is left to watch this sandbox
moves = [tuple(map(int, move.split(":"))) for move in sys.argv[2].split(",") if move]
parked = [(fcntl.fcntl(src, fcntl.F_DUPFD, 100), dst) for src, dst in moves]
for src, _ in moves:
    os.close(src)
for high, dst in parked:
    os.dup2(high, dst)
    os.close(high)
for limit in sys.argv[3].split(","):
    which, soft, hard = map(int, limit.split(":"))
    resource.setrlimit(which, (soft, hard))
os.nice(int(sys.argv[4]))
if sys.argv[5]:
    with open(sys.argv[5], "w") as procs:
        procs.write(str(os.getpid()))
os.execv(sys.argv[6], sys.argv[6:])
"""


class SandboxUnavailable(Exception):
    """bubblewrap is missing or cannot make its namespaces here: the playground is off on this server."""


@dataclass(frozen=True)
class Limits:
    """One run's limits; `from_settings` reads them at run time, so a test's override reaches the worker."""

    wall_s: float = 10.0
    cpu_s: int = 8
    memory_bytes: int = 512 * 1024 * 1024  # address space of each process, and resident memory of them all
    tasks: int = 48
    open_files: int = 64
    output_bytes: int = 1024 * 1024
    tmp_bytes: int = 16 * 1024 * 1024
    nice: int = 10  # the program's CPU priority below the site's own processes (higher is lower)
    cpu_shares: int = 64  # the weight of all sandboxes together against a session of the site's (1024); 0: none

    @classmethod
    def from_settings(cls) -> Limits:
        from django.conf import settings

        mib = 1024 * 1024
        return cls(
            wall_s=float(settings.CODE_SANDBOX_WALL_S), cpu_s=int(settings.CODE_SANDBOX_CPU_S),
            memory_bytes=int(settings.CODE_SANDBOX_MEMORY_MB) * mib, tasks=int(settings.CODE_SANDBOX_TASKS),
            open_files=int(settings.CODE_SANDBOX_OPEN_FILES), output_bytes=int(settings.CODE_SANDBOX_OUTPUT_BYTES),
            tmp_bytes=int(settings.CODE_SANDBOX_TMP_MB) * mib, nice=int(settings.CODE_SANDBOX_NICE),
            cpu_shares=int(settings.CODE_SANDBOX_CPU_SHARES),
        )


@dataclass(frozen=True)
class Runtime:
    """The interpreter the sandbox runs, and the host paths it needs, all bound read-only."""

    executable: str
    stdlib: str
    site_packages: str
    libraries: tuple[str, ...]  # shared-library directories (and the prefix's libpython)

    @classmethod
    def of_this_interpreter(cls) -> Runtime:
        """This worker's own CPython, found through its base prefix (never a virtualenv's site-packages)."""
        executable = os.path.realpath(sys.executable)
        stdlib = sysconfig.get_paths()["stdlib"]
        site_packages = os.path.join(stdlib, "site-packages")
        libraries = []
        libdir = sysconfig.get_config_var("LIBDIR")
        ldlibrary = sysconfig.get_config_var("INSTSONAME") or ""
        if libdir and ldlibrary and os.path.exists(os.path.join(libdir, ldlibrary)):
            libraries.append(os.path.join(libdir, ldlibrary))
        multiarch = sysconfig.get_config_var("MULTIARCH") or ""
        arch_dir = f"/usr/lib/{multiarch}"
        libraries.append(arch_dir if multiarch and os.path.isdir(arch_dir) else "/usr/lib")
        if os.path.isdir("/usr/lib64"):
            libraries.append("/usr/lib64")
        return cls(executable=executable, stdlib=os.path.realpath(stdlib), site_packages=site_packages,
                   libraries=tuple(libraries))


def bwrap_path() -> str:
    from django.conf import settings

    return str(settings.CODE_SANDBOX_BWRAP)


_known_good: set[tuple[str, str]] = set()


def unavailable_reason(bwrap: str | None = None) -> str | None:
    """None when the sandbox can start here; otherwise why not, in words a reader can be shown.

    A first run per process proves it by starting a real sandbox that runs
    `pass`; a success is remembered, a failure is probed again next time.
    """
    bwrap = bwrap or bwrap_path()
    runtime = Runtime.of_this_interpreter()
    if (bwrap, runtime.executable) in _known_good:
        return None
    if not os.path.isfile(bwrap) or not os.access(bwrap, os.X_OK):
        return f"bubblewrap is not installed here ({bwrap} is missing or not executable; Debian's package is `bubblewrap`)"
    if os.geteuid() == 0 and not os.access(SETPRIV, os.X_OK):
        return f"the worker runs as root but {SETPRIV} (util-linux) is missing, so no unprivileged user is possible"
    # At the site's own priority: the probe is the first thing a reader's first run waits for.
    probe = Sandbox("pass\n", Limits(wall_s=10.0, cpu_s=5, nice=0, cpu_shares=0), runtime=runtime, bwrap=bwrap,
                    tracer=None)
    try:
        probe.start()
        exit_code = probe.wait_quietly(timeout=10.0)
        said = probe.startup_error().strip().splitlines()
    except OSError as error:
        return f"bubblewrap could not start ({error})"
    finally:
        probe.cleanup()
    if exit_code != 0:
        detail = said[-1] if said else f"exit code {exit_code}"
        return f"bubblewrap cannot create its namespaces here ({detail})"
    _known_good.add((bwrap, runtime.executable))
    return None


# --- the sandboxes' share of the CPU ---------------------------------------------------------------

CGROUP_NAME = "code-sandbox"


def cpu_cgroup_procs(shares: int) -> str | None:
    """The cgroup.procs file of a CPU cgroup for every sandbox, weighted `shares` (against 1024), or None.

    Why a cgroup and not only nice: with the kernel's autogroups, each session
    (and every sandbox is a session of its own, bwrap --new-session) competes
    for the CPU as one group at nice 0 whatever its processes' nice values,
    so eight spinning sandboxes would take eight shares against the web
    tier's one. Tasks in a cgroup of their own are outside autogroups: all
    the sandboxes together weigh `shares`, and on an idle machine they still
    get every idle cycle. Made when the worker may (root, a writable
    cgroup v1 `cpu` hierarchy or a cgroup v2 root with the cpu controller);
    otherwise the sandboxes run without it, at their nice value.
    """
    if shares <= 0 or os.geteuid() != 0:
        return None
    try:
        v1 = Path("/sys/fs/cgroup/cpu")
        if (v1 / "cpu.shares").exists():
            group = v1 / CGROUP_NAME
            group.mkdir(exist_ok=True)
            (group / "cpu.shares").write_text(str(max(2, shares)))
            return str(group / "cgroup.procs")
        v2 = Path("/sys/fs/cgroup")
        if "cpu" in (v2 / "cgroup.controllers").read_text().split():
            if "cpu" not in (v2 / "cgroup.subtree_control").read_text().split():
                (v2 / "cgroup.subtree_control").write_text("+cpu")
            group = v2 / CGROUP_NAME
            group.mkdir(exist_ok=True)
            (group / "cpu.weight").write_text(str(max(1, shares * 100 // 1024)))
            return str(group / "cgroup.procs")
    except OSError as error:
        logger.info("no CPU cgroup for the sandboxes (%s); they run at their nice value only", error)
    return None


# --- which user runs the program -----------------------------------------------------------------

def _uids_in_use() -> set[int]:
    uids = set()
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                uids.add(os.stat(entry.path).st_uid)
            except OSError:
                pass
    return uids


def pick_uid() -> int:
    """A uid for one run, from the configured range, that no process is using now."""
    from django.conf import settings

    base, count = int(settings.CODE_SANDBOX_UID_BASE), int(settings.CODE_SANDBOX_UID_COUNT)
    in_use = _uids_in_use()
    for _ in range(100):
        uid = base + random.randrange(count)
        if uid not in in_use:
            return uid
    raise SandboxUnavailable("no free uid for the sandbox")


def processes_of(uid: int) -> list[int]:
    """Pids of every process owned by `uid` (a run's own uid, when the worker is root)."""
    pids = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                if os.stat(entry.path).st_uid == uid:
                    pids.append(int(entry.name))
            except OSError:
                pass
    return pids


def _descendants(root_pid: int) -> list[int]:
    """Every process below `root_pid`, through /proc/<pid>/task/<tid>/children."""
    found, frontier = [], [root_pid]
    while frontier:
        pid = frontier.pop()
        try:
            tasks = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for tid in tasks:
            try:
                with open(f"/proc/{pid}/task/{tid}/children") as children:
                    for child in children.read().split():
                        found.append(int(child))
                        frontier.append(int(child))
            except OSError:
                pass
    return found


def _usage(pid: int) -> tuple[int, int, float] | None:
    """(proportional resident bytes, threads, CPU seconds) of one process, or None once it has gone.

    Proportional (Pss): a page that forked processes share is split between
    them, so forty forks of one interpreter count once, not forty times.
    """
    try:
        with open(f"/proc/{pid}/smaps_rollup") as rollup:
            resident = next((int(line.split()[1]) * 1024 for line in rollup if line.startswith("Pss:")), 0)
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError, ValueError):
        return None
    # After the ")" that ends the command name: state is field 0, utime 11, stime 12, num_threads 17.
    return resident, int(fields[17]), (int(fields[11]) + int(fields[12])) / CLOCK_TICKS_PER_S


# --- the sandbox ------------------------------------------------------------------------------------

def _memfd(name: str, data: bytes) -> int:
    fd = os.memfd_create(name, 0)
    os.write(fd, data)
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


@dataclass
class Sandbox:
    """One sandboxed process tree: started by `start`, read by the relay, ended by `kill` and `cleanup`."""

    code: str
    limits: Limits
    runtime: Runtime
    bwrap: str
    tracer: str | None  # the tracer's source, or None to run main.py directly
    uid: int | None = None  # set when the worker is root
    process: subprocess.Popen[bytes] | None = None
    stdout: int = -1
    stderr: int = -1
    trace: int = -1
    status: int = -1
    init_pid: int | None = None
    cpu_s: float = 0.0  # CPU seconds of the whole tree: sampled while it runs, then from wait4
    _cpu_seen: dict[int, float] = field(default_factory=dict)
    _status_text: bytes = b""
    _fds: list[int] = field(default_factory=list)

    def command(self, fds: dict[str, int]) -> list[str]:
        """The bubblewrap command line (fds: where the launcher put main.py, the tracer and the status pipe)."""
        runtime = self.runtime
        # Not --unshare-all: it implies a user namespace, and a root worker's must not have one (the run's
        # uid would then map to root outside, where the process cap does not apply).
        args = [self.bwrap, "--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts", "--unshare-cgroup-try",
                "--die-with-parent", "--new-session", "--hostname", "playground", "--clearenv"]
        for name, value in SANDBOX_ENV.items():
            args += ["--setenv", name, value]
        if self.uid is None:
            args += ["--unshare-user", "--disable-userns", "--uid", "1000", "--gid", "1000"]
        args += ["--perms", "0755", "--dir", "/usr", "--symlink", "usr/lib", "/lib"]
        if os.path.isdir("/usr/lib64"):
            args += ["--symlink", "usr/lib64", "/lib64"]
        made = {"/", "/usr"}
        binds = [*runtime.libraries, runtime.executable, runtime.stdlib] + ([SETPRIV] if self.uid is not None else [])
        for path in binds:
            # Directories on the way to a bind are made world-readable: a root bubblewrap would make them 0700.
            for parent in reversed(Path(path).parents):
                if str(parent) not in made:
                    made.add(str(parent))
                    args += ["--perms", "0755", "--dir", str(parent)]
            args += ["--ro-bind", path, path]
        if os.path.isdir(runtime.site_packages):  # an empty, unwritable directory over it: the stdlib only
            args += ["--perms", "0555", "--size", str(PAGE_BYTES), "--tmpfs", runtime.site_packages,
                     "--remount-ro", runtime.site_packages]
        args += ["--proc", "/proc", "--dev", "/dev", "--perms", "1777", "--size", str(self.limits.tmp_bytes),
                 "--tmpfs", "/tmp", "--perms", "1777", "--size", str(SHM_BYTES), "--tmpfs", "/dev/shm",
                 "--perms", "0755", "--dir", SANDBOX_DIR,
                 "--perms", "0444", "--ro-bind-data", str(fds["main"]), f"{SANDBOX_DIR}/main.py"]
        if self.tracer is not None:
            args += ["--perms", "0444", "--ro-bind-data", str(fds["tracer"]), f"{SANDBOX_DIR}/tracer.py"]
        args += ["--remount-ro", "/", "--chdir", "/tmp", "--json-status-fd", str(fds["status"])]
        if "seccomp" in fds:
            args += ["--seccomp", str(fds["seccomp"])]
        if self.uid is not None:
            args += [SETPRIV, f"--reuid={self.uid}", f"--regid={self.uid}", "--clear-groups",
                     "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs", "--"]
        args += [runtime.executable, "-I", "-X", "utf8"]
        if self.tracer is not None:
            args += [f"{SANDBOX_DIR}/tracer.py"]
        args += [f"{SANDBOX_DIR}/main.py"]
        return args

    def rlimits(self) -> list[tuple[int, int, int]]:
        limits = self.limits
        tasks = limits.tasks
        if self.uid is None:
            # Without a uid of its own the run shares the worker's uid, whose processes count too.
            tasks += len(processes_of(os.getuid()))
        return [
            (resource.RLIMIT_CPU, limits.cpu_s, limits.cpu_s + 1),
            (resource.RLIMIT_AS, limits.memory_bytes, limits.memory_bytes),
            (resource.RLIMIT_STACK, STACK_BYTES, STACK_BYTES),
            (resource.RLIMIT_NOFILE, limits.open_files, limits.open_files),
            (resource.RLIMIT_NPROC, tasks, tasks),
            (resource.RLIMIT_FSIZE, limits.tmp_bytes, limits.tmp_bytes),
            (resource.RLIMIT_CORE, 0, 0),
        ]

    def start(self) -> None:
        if os.geteuid() == 0:
            self.uid = pick_uid()
        main_fd = _memfd("main.py", self.code.encode("utf-8", errors="surrogatepass"))
        tracer_fd = _memfd("tracer.py", self.tracer.encode()) if self.tracer is not None else None
        seccomp_program = seccomp.filter_program()
        seccomp_fd = _memfd("seccomp", seccomp_program) if seccomp_program is not None else None
        if seccomp_program is None:
            logger.warning("no seccomp filter for this machine (%s): the sandbox runs without one", os.uname().machine)
        stdout_r, stdout_w = os.pipe()
        stderr_r, stderr_w = os.pipe()
        trace_r, trace_w = os.pipe()
        status_r, status_w = os.pipe()
        self._fds = [main_fd, stdout_w, stderr_w, trace_w, status_w]
        self._fds += [fd for fd in (tracer_fd, seccomp_fd) if fd is not None]
        self.stdout, self.stderr, self.trace, self.status = stdout_r, stderr_r, trace_r, status_r
        for fd in (stdout_r, stderr_r, trace_r, status_r):
            os.set_blocking(fd, False)
        targets = {"main": 4, "status": 5}
        moves = [(trace_w, TRACE_FD), (main_fd, targets["main"]), (status_w, targets["status"])]
        if tracer_fd is not None:
            targets["tracer"] = 6
            moves.append((tracer_fd, targets["tracer"]))
        if seccomp_fd is not None:
            targets["seccomp"] = 7
            moves.append((seccomp_fd, targets["seccomp"]))
        limits = ",".join(f"{which}:{soft}:{hard}" for which, soft, hard in self.rlimits())
        launcher = [self.runtime.executable, "-I", "-S", "-c", LAUNCHER, str(os.getpid()),
                    ",".join(f"{src}:{dst}" for src, dst in moves), limits, str(self.limits.nice),
                    cpu_cgroup_procs(self.limits.cpu_shares) or ""]
        try:
            self.process = subprocess.Popen(
                launcher + self.command(targets), stdin=subprocess.DEVNULL, stdout=stdout_w, stderr=stderr_w,
                pass_fds=[src for src, _ in moves], env=dict(SANDBOX_ENV), cwd="/", start_new_session=True,
            )
        finally:
            for fd in self._fds:
                os.close(fd)
            self._fds = []

    def read_status(self) -> None:
        """Read what bubblewrap said on its status pipe (the sandbox init's pid comes first)."""
        try:
            while chunk := os.read(self.status, 4096):
                self._status_text += chunk
        except BlockingIOError:
            pass
        except OSError:
            return
        if self.init_pid is None:
            for line in self._status_text.decode(errors="replace").splitlines():
                try:
                    said = json.loads(line)
                except ValueError:
                    continue
                if isinstance(said, dict) and isinstance(said.get("child-pid"), int):
                    self.init_pid = said["child-pid"]

    def kill(self) -> None:
        """Kill every process of the run: the PID namespace's init (which takes the namespace with it), then the rest."""
        self.read_status()
        if self.init_pid is not None:
            _signal(self.init_pid, signal.SIGKILL)
        if self.process is not None:
            for pid in _descendants(self.process.pid):
                _signal(pid, signal.SIGKILL)
            _signal(self.process.pid, signal.SIGKILL)
        if self.uid is not None:
            for pid in processes_of(self.uid):
                _signal(pid, signal.SIGKILL)

    def wait_quietly(self, timeout: float) -> int | None:
        """Wait for the sandbox to exit (killing it past `timeout`); its exit code, as subprocess gives it.

        Reaped with wait4 so that `cpu_s` holds the CPU time of the whole
        tree: each process of it was reaped by its parent, all the way up.
        """
        assert self.process is not None
        deadline = time.monotonic() + timeout
        killed_at: float | None = None
        while True:
            if self.poll():
                return self.process.returncode
            now = time.monotonic()
            if killed_at is None and now >= deadline:
                self.kill()
                killed_at = now
            elif killed_at is not None and now - killed_at > 5:
                logger.error("playground sandbox %s did not exit after SIGKILL", self.process.pid)
                return None
            time.sleep(0.005)

    def poll(self) -> bool:
        """Whether the sandbox has exited (reaping it with wait4, for the CPU time of its whole tree)."""
        assert self.process is not None
        if self.process.returncode is not None:
            return True
        pid, status, usage = os.wait4(self.process.pid, os.WNOHANG)
        if not pid:
            return False
        self.cpu_s = max(self.cpu_s, usage.ru_utime + usage.ru_stime)
        self.process.returncode = os.waitstatus_to_exitcode(status)
        return True

    def startup_error(self) -> str:
        try:
            return os.read(self.stderr, 4096).decode(errors="replace")
        except OSError:
            return ""

    def cleanup(self) -> None:
        """Make sure nothing of the run is left: processes killed and reaped, descriptors closed."""
        if self.process is not None and self.process.returncode is None:
            self.kill()
            self.wait_quietly(timeout=0)
        if self.uid is not None:
            deadline = time.monotonic() + 2
            while (left := processes_of(self.uid)) and time.monotonic() < deadline:
                for pid in left:
                    _signal(pid, signal.SIGKILL)
                time.sleep(0.01)
            if left:
                logger.error("playground run left processes %s of uid %s", left, self.uid)
        for fd in (self.stdout, self.stderr, self.trace, self.status):
            if fd >= 0:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self.stdout = self.stderr = self.trace = self.status = -1


def _signal(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except (ProcessLookupError, PermissionError):
        pass


# --- the trace: checked line by line ---------------------------------------------------------------

class TraceRelay:
    """Turns the tracer's lines into `lane` and `state` events, dropping (and counting) anything malformed."""

    def __init__(self, emit, clock) -> None:
        self.emit = emit
        self.clock = clock
        self.lanes: set[int] = set()
        self.states = 0
        self.dropped = 0
        self.notes = 0
        self._partial = b""
        self._skipping = False  # inside a line already too long: drop until its newline
        self._cut: set[str] = set()

    def feed(self, data: bytes) -> None:
        lines = (self._partial + data).split(b"\n")
        self._partial = lines.pop()
        for line in lines:
            if self._skipping:
                self._skipping = False
                self.dropped += 1
                continue
            self._line(line)
        if len(self._partial) > TRACE_LINE_BYTES:
            self._partial = b""
            self._skipping = True

    def finish(self) -> None:
        if self._partial or self._skipping:
            self.dropped += 1
        self._partial = b""
        self._skipping = False

    def _cap(self, what: str, text: str) -> None:
        if what not in self._cut:
            self._cut.add(what)
            self.emit("note", text=text, t=self.clock())

    def _line(self, raw: bytes) -> None:
        if len(raw) > TRACE_LINE_BYTES:
            self.dropped += 1
            return
        try:
            event = json.loads(raw)
        except ValueError:
            self.dropped += 1
            return
        if not isinstance(event, dict):
            self.dropped += 1
            return
        kind, lane = event.get("kind"), event.get("lane")
        if not isinstance(lane, int) or not _is_int(lane, 0, MAX_LANES * 16):
            self.dropped += 1
            return
        if kind == "cap" and event.get("what") in CAP_NOTES:
            self._cap(event["what"], CAP_NOTES[event["what"]])
        elif kind == "lane":
            label, lane_type = event.get("label"), event.get("type")
            if not isinstance(label, str) or lane_type not in LANE_TYPES or lane in self.lanes:
                self.dropped += 1
                return
            if len(self.lanes) >= MAX_LANES:
                self._cap("lanes", CAP_NOTES["lanes"])
                return
            self.lanes.add(lane)
            self.emit("lane", lane=lane, label=label[:LABEL_CHARS], type=lane_type, t=self.clock())
        elif kind == "state":
            state, line, label = event.get("state"), event.get("line"), event.get("label")
            if (state not in STATES or lane not in self.lanes or not (line is None or _is_int(line, 1, MAX_LINE_NUMBER))
                    or not (label is None or isinstance(label, str))):
                self.dropped += 1
                return
            if self.states >= MAX_STATE_EVENTS:
                self._cap("states", CAP_NOTES["states"])
                return
            self.states += 1
            fields: dict[str, Any] = {"lane": lane, "state": state, "line": line}
            if label:
                fields["label"] = label[:LABEL_CHARS]
            self.emit("state", t=self.clock(), **fields)
        else:
            self.dropped += 1


def _is_int(value: Any, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


# --- one run ---------------------------------------------------------------------------------------

@dataclass
class Outcome:
    """What happened to one run, measured here."""

    exit_code: int | None
    killed_reason: str | None
    wall_ms: float
    cpu_ms: float
    output_bytes: int
    lanes: int
    trace_lines_dropped: int
    peak_memory_bytes: int
    peak_tasks: int
    stderr_tail: str


def run_program(code: str, emit, *, limits: Limits | None = None, tracer: str | None = None,
                bwrap: str | None = None) -> Outcome:
    """Run `code` in a fresh sandbox, relaying its output and trace through `emit`; always leaves nothing behind.

    Raises SandboxUnavailable when the sandbox cannot start here; the
    engine's RunCancelled / RunTimedOut (from emit) pass through after the
    sandbox was killed.
    """
    limits = limits or Limits.from_settings()
    bwrap = bwrap or bwrap_path()
    reason = unavailable_reason(bwrap)
    if reason is not None:
        raise SandboxUnavailable(reason)
    sandbox = Sandbox(code, limits, runtime=Runtime.of_this_interpreter(), bwrap=bwrap, tracer=tracer)
    started = time.perf_counter()
    emit_started = emit("note", text="Starting a fresh sandbox for your program.")

    def clock() -> float:
        return round(emit_started + (time.perf_counter() - started) * 1000, 2)

    relay = TraceRelay(emit, clock)
    decoders = {"stdout": codecs.getincrementaldecoder("utf-8")("replace"),
                "stderr": codecs.getincrementaldecoder("utf-8")("replace")}
    output_bytes = 0
    stderr_tail = b""
    killed_reason: str | None = None
    peak_memory = peak_tasks = 0
    selector = selectors.DefaultSelector()
    try:
        sandbox.start()
        assert sandbox.process is not None
        selector.register(sandbox.stdout, selectors.EVENT_READ, "stdout")
        selector.register(sandbox.stderr, selectors.EVENT_READ, "stderr")
        selector.register(sandbox.trace, selectors.EVENT_READ, "trace")
        deadline = time.monotonic() + limits.wall_s
        next_watch = 0.0
        open_streams = 3
        while killed_reason is None:
            emit.check_cancelled()
            if not open_streams and sandbox.poll():
                break
            timeout = max(0.0, min(WATCH_EVERY_S, deadline - time.monotonic()))
            ready = selector.select(timeout) if open_streams else []
            if not open_streams:
                time.sleep(min(timeout, 0.01))
            for key, _ in ready:
                name = key.data
                try:
                    # 3 bytes short of 4 KiB: an incomplete UTF-8 character carried over still fits a chunk.
                    data = os.read(key.fd, OUTPUT_CHUNK_BYTES - 3)
                except BlockingIOError:
                    continue
                if not data:
                    selector.unregister(key.fd)
                    open_streams -= 1
                    continue
                if name == "trace":
                    relay.feed(data)
                    continue
                allowed = limits.output_bytes - output_bytes
                output_bytes += len(data)
                if name == "stderr":
                    stderr_tail = (stderr_tail + data)[-2048:]
                text = decoders[name].decode(data[:max(0, allowed)])
                if text:
                    emit("output", stream=name, text=text, t=clock())
                if output_bytes > limits.output_bytes:
                    killed_reason = "output"
                    break
            now = time.monotonic()
            if killed_reason is None and now >= deadline:
                killed_reason = "time"
            if killed_reason is None and now >= next_watch:
                next_watch = now + WATCH_EVERY_S
                memory, tasks = _run_usage(sandbox)
                peak_memory, peak_tasks = max(peak_memory, memory), max(peak_tasks, tasks)
                if memory > limits.memory_bytes:
                    killed_reason = "memory"
                elif tasks >= limits.tasks:
                    killed_reason = "processes"
        killed = killed_reason is not None
        if killed:
            sandbox.kill()
        exit_code = _program_exit_code(sandbox.wait_quietly(timeout=5.0))
        if killed_reason is None and exit_code is not None and exit_code != 0:
            killed_reason = _limit_in_exit(exit_code, stderr_tail)
        relay.finish()
        for name, decoder in decoders.items():
            rest = decoder.decode(b"", final=True)
            if rest and output_bytes <= limits.output_bytes:
                emit("output", stream=name, text=rest, t=clock())
        wall_ms = (time.perf_counter() - started) * 1000
        return Outcome(
            exit_code=None if killed else exit_code,
            killed_reason=killed_reason, wall_ms=round(wall_ms, 1), cpu_ms=round(sandbox.cpu_s * 1000, 1),
            output_bytes=output_bytes, lanes=len(relay.lanes), trace_lines_dropped=relay.dropped,
            peak_memory_bytes=peak_memory, peak_tasks=peak_tasks, stderr_tail=stderr_tail.decode(errors="replace"),
        )
    finally:
        selector.close()
        sandbox.cleanup()


def _run_usage(sandbox: Sandbox) -> tuple[int, int]:
    """Resident bytes and tasks (processes plus threads) of the program's processes now; notes their CPU time."""
    if sandbox.process is None:
        return 0, 0
    sandbox.read_status()
    # Every process of the run lives in its PID namespace, below bubblewrap: walking down from it is cheaper
    # than scanning all of /proc (processes_of) twenty times a second.
    pids = _descendants(sandbox.process.pid)
    memory = tasks = 0
    for pid in pids:
        if pid == sandbox.init_pid:
            continue  # bubblewrap's own init, not the reader's program
        usage = _usage(pid)
        if usage is not None:
            memory += usage[0]
            tasks += usage[1]
            sandbox._cpu_seen[pid] = usage[2]
    sandbox.cpu_s = max(sandbox.cpu_s, sum(sandbox._cpu_seen.values()))
    return memory, tasks


def _program_exit_code(bwrap_exit: int | None) -> int | None:
    """The program's exit code as Python's subprocess gives it: bubblewrap reports a death by signal N as 128 + N."""
    if bwrap_exit is not None and 128 < bwrap_exit <= 128 + 64:
        return 128 - bwrap_exit
    return bwrap_exit


def _limit_in_exit(exit_code: int, stderr_tail: bytes) -> str | None:
    """Which limit a program that ended by itself ran into, from how it ended."""
    if exit_code == -signal.SIGXCPU:
        return "cpu"
    if exit_code == -signal.SIGXFSZ:
        return "files"
    last = stderr_tail.decode(errors="replace").strip().splitlines()[-1:] or [""]
    line = last[0]
    if line.startswith("MemoryError"):
        return "memory"
    if "can't start new thread" in line or "Resource temporarily unavailable" in line:
        return "processes"
    if "Too many open files" in line or "No space left on device" in line or "File too large" in line:
        return "files"
    return None
