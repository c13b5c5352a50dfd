#!/usr/bin/env python3
"""Show or set the scheduler slice (EEVDF, Linux >= 6.12) of every thread of a process.

    bench/sched-slice.py PID            print each thread's policy and slice
    bench/sched-slice.py PID NANOS      ask for a slice of NANOS ns on each thread (SCHED_OTHER)

The slice is `sched_attr.sched_runtime` of sched_setattr(2); the kernel clamps it to
0.1-100 ms. Setting it also resets the thread's nice value to 0. Used for the "longer scheduler
slice" row of docs/benchmarks.md, between interleaved bench/measure.sh runs of the same ringlb
process.
"""
import ctypes
import os
import platform
import struct
import sys

if platform.machine() != "x86_64":
    sys.exit("sched-slice.py: syscall numbers are those of x86_64")
SYS_SCHED_SETATTR, SYS_SCHED_GETATTR = 314, 315
# struct sched_attr: size, policy, flags, nice, priority, runtime, deadline, period, util_min/max
FMT = "IIQiIQQQII"
SIZE = struct.calcsize(FMT)
libc = ctypes.CDLL(None, use_errno=True)


def get(tid):
    buf = ctypes.create_string_buffer(SIZE)
    if libc.syscall(SYS_SCHED_GETATTR, tid, buf, SIZE, 0) != 0:
        raise OSError(ctypes.get_errno(), f"sched_getattr({tid})")
    return struct.unpack(FMT, buf.raw)


def set_slice(tid, nanos):
    buf = ctypes.create_string_buffer(struct.pack(FMT, SIZE, 0, 0, 0, 0, nanos, 0, 0, 0, 0), SIZE)
    if libc.syscall(SYS_SCHED_SETATTR, tid, buf, 0) != 0:
        raise OSError(ctypes.get_errno(), f"sched_setattr({tid})")


def main():
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__)
    pid = int(sys.argv[1])
    nanos = int(sys.argv[2]) if len(sys.argv) == 3 else None
    for tid in sorted(int(t) for t in os.listdir(f"/proc/{pid}/task")):
        if nanos is not None:
            set_slice(tid, nanos)
        attr = get(tid)
        comm = open(f"/proc/{pid}/task/{tid}/comm").read().strip()
        print(f"{tid}\t{comm}\tpolicy {attr[1]}\tslice {attr[5] / 1e6:.2f} ms")


if __name__ == "__main__":
    main()
