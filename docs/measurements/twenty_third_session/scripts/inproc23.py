"""inproc12.py without the per-round probe and k-loop calls (twenty-third session, decode rows). Scratch in-process harness (not committed): fused-lora (ctypes shim over LoraLinear),
numpy (OpenBLAS) and onnxruntime (MLAS) timed in the same interleaved rounds, 1 thread.
Problems and ONNX graphs from the anchors' own bench.py.
Usage: RAYON_NUM_THREADS=1 OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 python inproc.py ROUNDS shape,..."""
import ctypes, statistics, sys, time
sys.path.insert(0, "/tmp/anchors/python-peers")
import numpy as np
import onnxruntime as ort
from threadpoolctl import threadpool_limits
import bench

ort.set_default_logger_severity(3)
import os
T = int(os.environ.get("T", "1"))
ort.set_global_thread_pool_sizes(T, 1)
lib = ctypes.CDLL("/tmp/flshim/target/release/libflshim.so")
P = ctypes.c_void_p
lib.fl_new.restype = P
lib.fl_new.argtypes = [ctypes.c_size_t, ctypes.c_size_t, P, P, ctypes.c_size_t, P, P, ctypes.c_float]
lib.fl_forward.argtypes = [P, ctypes.c_size_t, P, P]
lib.fl_forward.restype = ctypes.c_int
lib.fl_free.argtypes = [P]
lib.fl_probe.restype = ctypes.c_double
ptr = lambda a: a.ctypes.data_as(P)

rounds = int(sys.argv[1])
want = sys.argv[2].split(",")
shapes = {s[0]: s for s in bench.SHAPES}
for name in want:
    if ":" in name:
        m, d_in, d_out, r = map(int, name.split(":"))
    else:
        _, m, d_in, d_out, r, decode, copies = shapes[name]
    x, W, b, A, B = bench.make_problem(m, d_in, d_out, r)
    rows = sorted({0, m // 2, m - 1})
    ref_b, ref_l = bench.ref_rows(x, W, b, A, B, rows)
    AT, BT = A.T, B.T
    fl_l = lib.fl_new(d_in, d_out, ptr(W), ptr(b), r, ptr(A), ptr(B), bench.SCALE)
    fl_b = lib.fl_new(d_in, d_out, ptr(W), None, 0, None, None, 0.0)
    y1 = np.full((m, d_out), np.nan, dtype=np.float32)
    y2 = np.full((m, d_out), np.nan, dtype=np.float32)
    so = ort.SessionOptions()
    so.use_per_session_threads = False
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    sb = ort.InferenceSession(bench.build_onnx(m, d_in, d_out, r, W, b, A, B, False), so, providers=["CPUExecutionProvider"])
    sl = ort.InferenceSession(bench.build_onnx(m, d_in, d_out, r, W, b, A, B, True), so, providers=["CPUExecutionProvider"])
    feed = {"x": x}
    WT = W.T

    def np_lora():
        y = x @ WT
        y += b
        y += (bench.SCALE * (x @ AT)) @ BT
        return y
    fns = {
        "fl_lora": lambda: lib.fl_forward(fl_l, m, ptr(x), ptr(y1)),
        "fl_base": lambda: lib.fl_forward(fl_b, m, ptr(x), ptr(y2)),
        "ort_base": lambda: sb.run(None, feed)[0],
        "np_base": lambda: x @ WT,
        "ort_lora": lambda: sl.run(None, feed)[0],
        "np_lora": np_lora,
    }
    if os.environ.get("NO_ORT"):
        for k in ["ort_base", "ort_lora"]:
            fns.pop(k)
    with threadpool_limits(limits=T, user_api="blas"):
        for f in fns.values():
            f(); f()
        assert fns["fl_lora"]() == 0 and fns["fl_base"]() == 0
        err = max(bench.rel_err(y1, ref_l, rows), bench.rel_err(y2, ref_b, rows))
        t = {k: [] for k in fns}
        order = list(fns.items())
        t0 = time.time()
        pk, kl = [], []
        for rep in range(rounds):
            o = order[rep % len(order):] + order[:rep % len(order)]
            for k, f in o:
                s = time.perf_counter(); f(); t[k].append(time.perf_counter() - s)
        wall = time.time() - t0
    med = {k: statistics.median(v) * 1e3 for k, v in t.items()}
    def rr(a, bs):
        return [x / min(ys) for x, *ys in zip(t[a], *[t[q] for q in bs])]
    def q(v):
        v = sorted(v); n = len(v)
        return v[n // 4], statistics.median(v), v[(3 * n) // 4]
    fl = 2 * m * (d_in * d_out + d_in * r + r * d_out)
    print(f"## {name} ({m} x {d_in} -> {d_out}, r {r}), {rounds} rounds, {wall:.0f} s, fused-lora rel err {err:.1e}")
    print("| variant | median ms | GFLOP/s (LoRA FLOPs) |")
    print("|---|---:|---:|")
    for k in fns:
        print(f"| {k} | {med[k]:.3f} | {fl / med[k] / 1e6:.1f} |")
    for a, bs, lab in ([("fl_lora", ["np_base"], "fl LoRA op / numpy base"), ("fl_base", ["np_base"], "fl base / numpy base"), ("fl_lora", ["fl_base"], "fl forward(r) / forward(0)")] if os.environ.get("NO_ORT") else [("fl_lora", ["ort_base", "np_base"], "fl LoRA op / fastest peer base (per round)"),
                       ("fl_lora", ["ort_base"], "fl LoRA op / ort base"),
                       ("fl_lora", ["np_base"], "fl LoRA op / numpy base"),
                       ("fl_base", ["ort_base", "np_base"], "fl base / fastest peer base"),
                       ("fl_lora", ["ort_lora", "np_lora"], "fl LoRA op / fastest peer LoRA op"),
                       ("fl_lora", ["fl_base"], "fl forward(r) / forward(0)")]):
        q1, md, q3 = q(rr(a, bs))
        print(f"- {lab}: median {md:.3f} (quartiles {q1:.3f}–{q3:.3f})")
    print(flush=True)
    lib.fl_free(fl_l); lib.fl_free(fl_b)
