#!/bin/bash
# Fourteenth-session sitting: prefill512 on 2 threads, quiet-gated cycles (two short 2-thread
# ceilings runs at the seed shape must read the row block at >= 94 % before and after a cycle;
# a cycle whose after-check fails is logged "disturbed"). Each cycle: ceilings at prefill512 on
# 2 threads (4 rounds); then one inproc14.py process each (2 threads, 4 rounds): fused-lora,
# numpy with OPENBLAS_THREAD_TIMEOUT=4 (its idle workers sleep at once, so the probe in its
# process is clean), numpy with OpenBLAS's default timeout (times only), onnxruntime (3 rounds).
OUT=${1:-/tmp/s14/sit}; mkdir -p $OUT
EX=/work/main/target/release/examples/ceilings
END=$(( $(date +%s) + ${2:-1500} ))
H=/tmp/s14/inproc14.py
quiet() {
  for i in 1 2; do
    v=$($EX --threads 2 --rounds 3 | grep "^| row block" | awk -F'|' '{print $5}' | awk '{print $1}')
    echo "$(date -u +%H:%M:%S) check row block $v" >> $OUT/log
    awk -v v="$v" 'BEGIN{exit !(v>=94)}' || return 1
  done
}
cd /tmp/anchors
c=0
while [ $(date +%s) -lt $END ]; do
  if ! quiet; then sleep 30; continue; fi
  c=$((c+1)); date -u +"cycle $c start %H:%M:%S" >> $OUT/log
  $EX --threads 2 --rounds 4 --rows 512 --d-in 4096 --d-out 4096 --rank 16 > $OUT/ceil_p512_t2_c$c.txt 2>&1
  MODE=fl LABEL=fl T=2 .venv/bin/python $H 4 prefill512 > $OUT/rounds_c$c.fl.tsv 2>> $OUT/err.txt
  MODE=np LABEL=np_to4 OPENBLAS_THREAD_TIMEOUT=4 T=2 .venv/bin/python $H 4 prefill512 > $OUT/rounds_c$c.np_to4.tsv 2>> $OUT/err.txt
  MODE=np LABEL=np_default T=2 .venv/bin/python $H 4 prefill512 > $OUT/rounds_c$c.np_default.tsv 2>> $OUT/err.txt
  MODE=ort LABEL=ort T=2 .venv/bin/python $H 3 prefill512 > $OUT/rounds_c$c.ort.tsv 2>> $OUT/err.txt
  if quiet; then date -u +"cycle $c quiet %H:%M:%S" >> $OUT/log; else date -u +"cycle $c disturbed %H:%M:%S" >> $OUT/log; fi
done
date -u +"done %H:%M:%S" >> $OUT/log
