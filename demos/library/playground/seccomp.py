"""A seccomp filter for the playground's sandbox: the system calls a learner's program has no use for are refused.

bubblewrap installs it (`--seccomp FD`, a classic BPF program) just before it
starts the program, and every process the program starts inherits it. The
namespaces and the unprivileged uid already keep the program in; the filter
shrinks the kernel it can reach from there: no new namespaces (so no
capabilities in a user namespace of its own), no mounts, no ptrace of other
processes' memory, no keyrings, eBPF, perf, io_uring or userfaultfd, nothing
that loads kernel code or changes the clock. Each refusal is EPERM, as an
unprivileged process would mostly get anyway, so Python raises an ordinary
PermissionError. `clone3` answers ENOSYS: glibc then falls back to `clone`,
whose flags the filter can read (clone3 passes them in memory, out of
seccomp's sight). System calls of another ABI (x32, i386) kill the process.

Only x86-64 has a filter here (the system call numbers differ on other
machines); `filter_program()` returns None elsewhere and the sandbox runs
without one, relying on its other walls.
"""
from __future__ import annotations

import errno
import platform
import struct

AUDIT_ARCH_X86_64 = 0xC000003E
X32_SYSCALL_BIT = 0x40000000

# Classic BPF opcodes and seccomp return values (linux/filter.h, linux/seccomp.h).
LOAD_WORD = 0x20  # BPF_LD | BPF_W | BPF_ABS
JUMP_EQUAL = 0x15  # BPF_JMP | BPF_JEQ | BPF_K
JUMP_AT_LEAST = 0x35  # BPF_JMP | BPF_JGE | BPF_K
JUMP_ANY_BIT = 0x45  # BPF_JMP | BPF_JSET | BPF_K
RETURN = 0x06  # BPF_RET | BPF_K
RET_ALLOW = 0x7FFF0000
RET_KILL_PROCESS = 0x80000000
RET_ERRNO = 0x00050000

# Offsets into struct seccomp_data.
NR_OFFSET, ARCH_OFFSET, ARG0_OFFSET = 0, 4, 16

CLONE_NEW_NAMESPACES = (0x00020000 | 0x02000000 | 0x04000000 | 0x08000000 | 0x10000000 | 0x20000000
                        | 0x40000000 | 0x00000080)  # NEWNS, NEWCGROUP, NEWUTS, NEWIPC, NEWUSER, NEWPID, NEWNET, NEWTIME
NR_CLONE = 56
NR_CLONE3 = 435

# x86-64 numbers of the refused calls (arch/x86/entry/syscalls/syscall_64.tbl).
REFUSED_X86_64 = {
    "ptrace": 101, "syslog": 103, "uselib": 134, "vhangup": 153, "pivot_root": 155, "adjtimex": 159, "chroot": 161,
    "acct": 163, "settimeofday": 164, "mount": 165, "umount2": 166, "swapon": 167, "swapoff": 168, "reboot": 169,
    "sethostname": 170, "setdomainname": 171, "iopl": 172, "ioperm": 173, "init_module": 175, "delete_module": 176,
    "quotactl": 179, "nfsservctl": 180, "lookup_dcookie": 212, "clock_settime": 227, "kexec_load": 246,
    "add_key": 248, "request_key": 249, "keyctl": 250, "unshare": 272, "perf_event_open": 298,
    "name_to_handle_at": 303, "open_by_handle_at": 304, "clock_adjtime": 305, "setns": 308,
    "process_vm_readv": 310, "process_vm_writev": 311, "finit_module": 313, "kexec_file_load": 320, "bpf": 321,
    "userfaultfd": 323, "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427, "open_tree": 428,
    "move_mount": 429, "fsopen": 430, "fsconfig": 431, "fsmount": 432, "fspick": 433, "mount_setattr": 442,
}


def _op(code: int, k: int, jump_true: int = 0, jump_false: int = 0) -> bytes:
    return struct.pack("=HBBI", code, jump_true, jump_false, k)


def filter_program() -> bytes | None:
    """The filter as bubblewrap's --seccomp expects it (an array of struct sock_filter), or None off x86-64."""
    if platform.machine() != "x86_64":
        return None
    refuse = RET_ERRNO | errno.EPERM
    program = [
        _op(LOAD_WORD, ARCH_OFFSET),
        _op(JUMP_EQUAL, AUDIT_ARCH_X86_64, 1, 0),
        _op(RETURN, RET_KILL_PROCESS),
        _op(LOAD_WORD, NR_OFFSET),
        _op(JUMP_AT_LEAST, X32_SYSCALL_BIT, 0, 1),
        _op(RETURN, RET_KILL_PROCESS),
    ]
    for number in sorted(REFUSED_X86_64.values()):
        program += [_op(JUMP_EQUAL, number, 0, 1), _op(RETURN, refuse)]
    program += [_op(JUMP_EQUAL, NR_CLONE3, 0, 1), _op(RETURN, RET_ERRNO | errno.ENOSYS)]
    program += [
        _op(JUMP_EQUAL, NR_CLONE, 0, 3),
        _op(LOAD_WORD, ARG0_OFFSET),
        _op(JUMP_ANY_BIT, CLONE_NEW_NAMESPACES, 0, 1),
        _op(RETURN, refuse),
        _op(RETURN, RET_ALLOW),
    ]
    return b"".join(program)
