#!/usr/bin/env python3
"""How the disk takes a gigabyte, written three ways, for the upload row.

Usage: bench/scripts/disk_write.py DIR [SIZE_MIB]

Writes SIZE_MIB (default 1024) in 1 MiB writes to a file in DIR, then fsyncs
it, and prints the time of the writes, of the fsync and of both, for:
  buffered   through the page cache, all the writeback left to the fsync
             (what `dd bs=1M conv=fsync` does)
  sfr-N      the same, starting writeback every N MiB with sync_file_range
             (the server does it every MiB)
  direct     O_DIRECT: every write is on the device before it returns, so
             the fsync has no data of its own left to write
"""
import ctypes
import mmap
import os
import sys
import time

SYNC_FILE_RANGE_WRITE = 2
MIB = 1 << 20
libc = ctypes.CDLL(None, use_errno=True)
libc.sync_file_range.argtypes = [ctypes.c_int, ctypes.c_longlong, ctypes.c_longlong, ctypes.c_uint]


def write(path, size_mib, flags=0, writeback_every=0):
    buffer = mmap.mmap(-1, MIB)  # page-aligned, as O_DIRECT wants
    buffer.write(b"\x07" * MIB)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | flags, 0o600)
    try:
        start = time.monotonic()
        for i in range(size_mib):
            os.write(fd, buffer)
            done = i + 1
            if writeback_every and done % writeback_every == 0:
                offset = (done - writeback_every) * MIB
                if libc.sync_file_range(fd, offset, writeback_every * MIB, SYNC_FILE_RANGE_WRITE) != 0:
                    raise OSError(ctypes.get_errno(), "sync_file_range")
        written = time.monotonic()
        os.fsync(fd)
        synced = time.monotonic()
    finally:
        os.close(fd)
        os.unlink(path)
    return written - start, synced - written


def main():
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__)
    directory = sys.argv[1]
    size_mib = int(sys.argv[2]) if len(sys.argv) == 3 else 1024
    path = os.path.join(directory, "disk_write.tmp")
    ways = [
        ("buffered", {}),
        ("sfr-1", {"writeback_every": 1}),
        ("sfr-8", {"writeback_every": 8}),
        ("sfr-32", {"writeback_every": 32}),
        ("direct", {"flags": os.O_DIRECT}),
    ]
    for name, options in ways:
        writes, fsync = write(path, size_mib, **options)
        total = writes + fsync
        print(f"{name:9} writes {writes:.3f} s, fsync {fsync:.3f} s, "
              f"total {total:.3f} s = {size_mib * MIB / total / 1e6:.0f} MB/s")


if __name__ == "__main__":
    main()
