#!/usr/bin/python3
"""Gloo allreduce benchmark timed like nccl-tests' all_reduce_perf (one process per rank).

    GLOO_SOCKET_IFNAME=eth0 /usr/bin/python3 gloo_allreduce.py \
        --init tcp://10.77.0.1:29600 --rank R --world-size P \
        --minbytes 1048576 --maxbytes 67108864 --iters 5 --warmup 2

For each size MINBYTES, 2*MINBYTES, ... <= MAXBYTES: WARMUP untimed dist.all_reduce calls on
a float32 tensor (sum, in place: Gloo has no out-of-place allreduce), a barrier, ITERS timed
calls. Each rank's time per call is averaged across ranks (as nccl-tests does). Rank 0 prints
one line per size:

    size_bytes count time_us_mean time_us_max algbw_gb_s busbw_gb_s

with algbw = size / mean time and busbw = algbw * 2(P-1)/P (GB = 1e9 bytes).
Needs Debian's python3-torch (apt-get install python3-torch), run with /usr/bin/python3.
"""
import argparse
import datetime
import os
import sys
import time


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--init", required=True, help="init_method, e.g. tcp://10.77.0.1:29600")
    ap.add_argument("--rank", type=int, required=True)
    ap.add_argument("--world-size", type=int, required=True)
    ap.add_argument("--minbytes", type=int, required=True)
    ap.add_argument("--maxbytes", type=int, required=True)
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--timeout", type=float, default=300, help="seconds for any collective")
    a = ap.parse_args()
    if a.minbytes < 4 or a.maxbytes < a.minbytes or a.iters < 1 or a.warmup < 0:
        sys.exit("gloo_allreduce: bad arguments (need 4 <= minbytes <= maxbytes, iters >= 1, warmup >= 0)")

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch
    import torch.distributed as dist

    if not dist.is_available() or not dist.is_gloo_available():
        sys.exit("gloo_allreduce: this torch has no gloo backend (apt-get install python3-torch)")
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=a.init, rank=a.rank, world_size=a.world_size,
                            timeout=datetime.timedelta(seconds=a.timeout))
    p = dist.get_world_size()
    busfactor = 2.0 * (p - 1) / p
    if a.rank == 0:
        print(f"# gloo_allreduce: torch {torch.__version__}, {p} ranks, float sum, in place, "
              f"iters {a.iters} warmup {a.warmup}", flush=True)
    buf = torch.ones(a.maxbytes // 4, dtype=torch.float32)
    size = a.minbytes
    while size <= a.maxbytes:
        count = size // 4
        t = buf[:count]
        for _ in range(a.warmup):
            dist.all_reduce(t, op=dist.ReduceOp.SUM)
        t.fill_(1.0)
        dist.barrier()
        t0 = time.perf_counter()
        for _ in range(a.iters):
            dist.all_reduce(t, op=dist.ReduceOp.SUM)
        dt = (time.perf_counter() - t0) / a.iters
        times = torch.tensor([dt], dtype=torch.float64)
        mx = times.clone()
        dist.all_reduce(times, op=dist.ReduceOp.SUM)
        dist.all_reduce(mx, op=dist.ReduceOp.MAX)
        # in place: after ITERS sums of ones the value is P**ITERS (exact in float32 while small)
        want = float(p) ** a.iters
        if want < 2 ** 24 and (t[0].item() != want or t[-1].item() != want):
            sys.exit(f"gloo_allreduce: rank {a.rank}: wrong result {t[0].item()} at size {size} (want {want})")
        if a.rank == 0:
            mean = times.item() / p
            algbw = size / mean / 1e9
            print(f"{size} {count} {mean * 1e6:.1f} {mx.item() * 1e6:.1f} {algbw:.4f} {algbw * busfactor:.4f}",
                  flush=True)
        size *= 2
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
