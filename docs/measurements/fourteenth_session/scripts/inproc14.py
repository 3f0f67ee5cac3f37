"""2-thread ceiling harness (thirteenth session, fourteenth: LABEL names the process in the output, e.g. np with OPENBLAS_THREAD_TIMEOUT=4; saved beside its results, not part of the crate).
One library per process (MODE=fl|ort|np), T threads, each pool left as its library sets it up
(onnxruntime's workers spin after a run, as in the anchors). Every round, per shape: idle GAP s (0.05, or 0.3 for numpy, whose OpenBLAS threads keep spinning for about 0.1 s)
(so the previous call's spinning pool threads are parked), the T-thread FMA probe (fused-lora's
probe through the ctypes shim), idle GAP, the T-thread k loop in cache (each thread its own copy,
shim), then per variant: idle GAP, one untimed call (wakes the pool), REPS timed calls back to
back. Reported per round: rate / that round's probe.
Usage: MODE=ort T=2 python inproc13.py ROUNDS shape,...   (prints one TSV line per round)"""
import ctypes, os, statistics, sys, time
sys.path.insert(0, "/tmp/anchors/python-peers")
import numpy as np
import bench

MODE = os.environ["MODE"]
T = int(os.environ.get("T", "2"))
GAP = float(os.environ.get("GAP", "0.3" if MODE == "np" else "0.05"))
REPS = int(os.environ.get("REPS", "3"))
if MODE == "ort":
    import onnxruntime as ort
    ort.set_default_logger_severity(3)
    ort.set_global_thread_pool_sizes(T, 1)
from threadpoolctl import threadpool_limits
lib = ctypes.CDLL("/tmp/flshim/target/release/libflshim.so")
P = ctypes.c_void_p
lib.fl_new.restype = P
lib.fl_new.argtypes = [ctypes.c_size_t, ctypes.c_size_t, P, P, ctypes.c_size_t, P, P, ctypes.c_float]
lib.fl_forward.argtypes = [P, ctypes.c_size_t, P, P]
lib.fl_forward.restype = ctypes.c_int
lib.fl_probe.restype = ctypes.c_double
lib.fl_kloop.restype = ctypes.c_double
ptr = lambda a: a.ctypes.data_as(P)
rounds = int(sys.argv[1])
shapes = {s[0]: s for s in bench.SHAPES}
for name in sys.argv[2].split(","):
    _, m, d_in, d_out, r, decode, copies = shapes[name]
    x, W, b, A, B = bench.make_problem(m, d_in, d_out, r)
    rows = sorted({0, m // 2, m - 1})
    ref_b, ref_l = bench.ref_rows(x, W, b, A, B, rows)
    base_fl = 2.0 * m * d_in * d_out
    lora_fl = 2.0 * m * (d_in * d_out + d_in * r + r * d_out)
    if MODE == "fl":
        fl_l = lib.fl_new(d_in, d_out, ptr(W), ptr(b), r, ptr(A), ptr(B), bench.SCALE)
        fl_b = lib.fl_new(d_in, d_out, ptr(W), None, 0, None, None, 0.0)
        y1 = np.full((m, d_out), np.nan, dtype=np.float32)
        y2 = np.full((m, d_out), np.nan, dtype=np.float32)
        fns = {"base": lambda: (lib.fl_forward(fl_b, m, ptr(x), ptr(y2)), y2)[1],
               "lora": lambda: (lib.fl_forward(fl_l, m, ptr(x), ptr(y1)), y1)[1]}
    elif MODE == "ort":
        so = ort.SessionOptions()
        so.use_per_session_threads = False
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        sb = ort.InferenceSession(bench.build_onnx(m, d_in, d_out, r, W, b, A, B, False), so, providers=["CPUExecutionProvider"])
        sl = ort.InferenceSession(bench.build_onnx(m, d_in, d_out, r, W, b, A, B, True), so, providers=["CPUExecutionProvider"])
        feed = {"x": x}
        fns = {"base": lambda: sb.run(None, feed)[0], "lora": lambda: sl.run(None, feed)[0]}
    else:
        WT, AT, BT = W.T, A.T, B.T
        def np_lora():
            y = x @ WT
            y += b
            y += (bench.SCALE * (x @ AT)) @ BT
            return y
        fns = {"base": lambda: x @ WT, "lora": np_lora}  # base without bias, as the anchors (inproc13 added b here)
    with threadpool_limits(limits=T, user_api="blas"):
        err = max(bench.rel_err(fns["base"](), ref_b, rows), bench.rel_err(fns["lora"](), ref_l, rows))
        for rep in range(rounds):
            time.sleep(GAP); pk = lib.fl_probe()
            time.sleep(GAP); kl = lib.fl_kloop()
            out = {}
            for k, f in (list(fns.items()) if rep % 2 == 0 else list(fns.items())[::-1]):
                time.sleep(GAP); f()
                ts = []
                for _ in range(REPS):
                    s = time.perf_counter(); f(); ts.append(time.perf_counter() - s)
                out[k] = statistics.median(ts)
            print(f"{os.environ.get('LABEL', MODE)}\t{name}\t{T}\t{rep}\t{pk:.2f}\t{kl / pk:.4f}\t{base_fl / out['base'] / 1e9 / pk:.4f}\t{lora_fl / out['lora'] / 1e9 / pk:.4f}\t{out['base']*1e3:.3f}\t{out['lora']*1e3:.3f}\t{err:.1e}\t{time.strftime('%H:%M:%S')}", flush=True)
