"""Resident-set measurement on Linux, without importing torch (so that a
measuring child process can set up glibc before torch loads):

* :func:`mmap_large_blocks`: glibc serves every allocation of
  ``threshold`` bytes or more with its own ``mmap`` and gives freed memory
  back at once, so the resident set follows what is allocated.
* :func:`status_bytes`: a ``/proc/self/status`` field (``VmRSS``,
  ``VmHWM``) in bytes.
* :func:`reset_peak`: reset the kernel's high-water mark ``VmHWM``
  (``/proc/self/clear_refs`` = 5).
"""
import ctypes
from typing import Optional


def mmap_large_blocks(threshold: int = 64 << 10) -> bool:
    """Set glibc's ``M_MMAP_THRESHOLD`` and ``M_TRIM_THRESHOLD`` to
    ``threshold``; False where glibc's ``mallopt`` is unavailable."""
    try:
        libc = ctypes.CDLL('libc.so.6')
    except OSError:
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3
    return bool(libc.mallopt(m_mmap_threshold, threshold)
                & libc.mallopt(m_trim_threshold, threshold))


def status_bytes(field: str) -> Optional[int]:
    """A ``/proc/self/status`` field in bytes; None where unreadable."""
    try:
        with open('/proc/self/status') as f:
            for line in f:
                if line.startswith(field + ':'):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def reset_peak() -> bool:
    """Reset ``VmHWM`` to the current resident set; False where the kernel
    does not allow it."""
    try:
        with open('/proc/self/clear_refs', 'w') as f:
            f.write('5')
        return True
    except OSError:
        return False
