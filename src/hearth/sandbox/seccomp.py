"""A seccomp-bpf filter: system calls a function has no business making fail with EPERM.

Built with libseccomp (through pyseccomp), which knows each architecture's numbers. The
list is a deny list on top of the other layers (a distinct uid, Landlock, namespaces):
calls that reach into other processes, the kernel's configuration, or new namespaces.
"""

from __future__ import annotations

import errno

DENIED = (
    # other processes' memory and execution
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "kcmp",
    "pidfd_getfd",
    # namespaces and mounts
    "unshare",
    "setns",
    "mount",
    "umount2",
    "pivot_root",
    "chroot",
    "move_mount",
    "open_tree",
    "fsopen",
    "fsconfig",
    "fsmount",
    "fspick",
    "mount_setattr",
    # the kernel itself
    "init_module",
    "finit_module",
    "delete_module",
    "kexec_load",
    "kexec_file_load",
    "reboot",
    "swapon",
    "swapoff",
    "syslog",
    "acct",
    "settimeofday",
    "clock_settime",
    "clock_adjtime",
    "adjtimex",
    "sethostname",
    "setdomainname",
    "iopl",
    "ioperm",
    "quotactl",
    "nfsservctl",
    # interfaces with a history of kernel exploits, or cross-process reach
    "bpf",
    "perf_event_open",
    "userfaultfd",
    "keyctl",
    "add_key",
    "request_key",
    "lookup_dcookie",
    "open_by_handle_at",
    "name_to_handle_at",
    "fanotify_init",
    "personality",
    "uselib",
    "vm86",
    "vm86old",
)


class SeccompError(OSError):
    """libseccomp is missing or the filter could not be loaded."""


def available() -> bool:
    try:
        import pyseccomp  # noqa: F401
    except (ImportError, OSError):  # the binding loads libseccomp.so when imported
        return False
    return True


def deny(names: tuple[str, ...] = DENIED) -> None:
    """Load the filter into this process (inherited by its children, kept across exec)."""
    try:
        import pyseccomp
    except (ImportError, OSError) as exc:
        raise SeccompError(0, f"libseccomp is not available: {exc}") from exc
    rules = pyseccomp.SyscallFilter(pyseccomp.ALLOW)
    for name in names:
        try:
            rules.add_rule(pyseccomp.ERRNO(errno.EPERM), name)
        except (RuntimeError, ValueError, OSError):
            continue  # not a system call on this architecture (vm86 on x86_64, ...)
    try:
        rules.load()
    except (RuntimeError, OSError) as exc:
        raise SeccompError(0, f"the seccomp filter could not be loaded: {exc}") from exc
