"""The C heap of this process (glibc's malloc), for peak memory (issue 18; docs/speed.md, "Memory, fourth pass").

glibc keeps freed memory in its arenas for reuse: fast (no page faults), but a process that once held
a few hundred MB of numpy buffers goes on holding them. Two levers, both no-ops without glibc (musl,
macOS, Windows):

- :func:`trim` hands the arenas' free pages back (``malloc_trim(0)``): called where a stage's
  working set is done with (the mix step, once the segments are rendered and the SoundFont let go).
- :func:`set_mmap_threshold` (Settings.mmap_threshold_kb; default 0, off) maps every block from
  that size on by itself, so it leaves the process the moment it is freed. glibc's own threshold
  slides up to the largest block freed (to 32 MB), after which few-MB arrays come from the arenas.
  Fixed at 256 KiB the peak fell by ~70 MB more (compose stage, 1 and 15 minutes), but each such
  block is faulted in afresh: the composer took ~1.6x its CPU. Off by default; for a host that
  counts memory before time.
"""

from __future__ import annotations

import functools
from typing import Any

_M_MMAP_THRESHOLD = -3  # glibc's malloc.h


@functools.cache
def _libc() -> Any:
    """glibc, loaded through ctypes; None elsewhere."""
    import ctypes
    import os

    try:
        if not (os.confstr("CS_GNU_LIBC_VERSION") or "").startswith("glibc"):
            return None
        return ctypes.CDLL("libc.so.6")
    except (OSError, AttributeError, ValueError):  # no confstr (Windows), an unknown name (macOS)
        return None


@functools.cache
def set_mmap_threshold(threshold_kb: int) -> bool:
    """Fix glibc's mmap threshold at ``threshold_kb`` for this process (once per value). False where
    there is no glibc or ``threshold_kb`` is 0: the allocator's own sliding threshold stands."""
    libc = _libc() if threshold_kb > 0 else None
    return bool(libc is not None and libc.mallopt(_M_MMAP_THRESHOLD, threshold_kb * 1024))


def trim() -> bool:
    """Give the free pages of every arena back to the system; True where glibc did (a few ms)."""
    libc = _libc()
    return bool(libc is not None and libc.malloc_trim(0))
