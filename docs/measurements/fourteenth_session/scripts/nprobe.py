import ctypes, os, time, sys
import numpy as np
from threadpoolctl import threadpool_limits, threadpool_info
lib = ctypes.CDLL("/tmp/flshim/target/release/libflshim.so"); lib.fl_probe.restype = ctypes.c_double
gap = float(sys.argv[1])
print([ (i['internal_api'], i.get('version'), i['num_threads']) for i in threadpool_info()], os.environ.get("OPENBLAS_THREAD_TIMEOUT"))
x = np.random.rand(512, 4096).astype(np.float32); W = np.random.rand(4096, 4096).astype(np.float32)
with threadpool_limits(2, user_api="blas"):
    for i in range(6):
        t = time.perf_counter(); y = x @ W.T; t = time.perf_counter() - t
        time.sleep(gap); p = lib.fl_probe()
        print(f"gemm {t*1e3:.1f} ms  {2*512*4096*4096/t/1e9:.1f} GF/s  probe {p:.1f}", flush=True)
