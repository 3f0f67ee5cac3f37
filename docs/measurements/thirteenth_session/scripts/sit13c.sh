#!/bin/bash
# Thirteenth-session sitting c: quiet-gated cycles. Before and after each cycle, two short
# 2-thread ceilings runs must read the row block at >= 94 % of the probe; a cycle whose
# after-check fails is marked "disturbed" in the log (its files are kept, tagged). Each cycle:
# ceilings at the seed shape on 1 thread and 2 (10 rounds), then one inproc13.py process each
# for fused-lora and onnxruntime on 2 threads (seed_r4, seed, seed_r16; 8 rounds).
OUT=${1:-/tmp/s13/sitc}; mkdir -p $OUT
EX=/work/main/target/release/examples/ceilings
END=$(( $(date +%s) + ${2:-3000} ))
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
  $EX --threads 1 --rounds 10 > $OUT/ceil_t1_c$c.txt 2>&1
  $EX --threads 2 --rounds 10 > $OUT/ceil_t2_c$c.txt 2>&1
  for mode in fl ort; do
    MODE=$mode T=2 .venv/bin/python /tmp/scratch/inproc13.py 8 seed_r4,seed,seed_r16 > $OUT/rounds_c$c.$mode.tsv 2>> $OUT/err.txt
  done
  if quiet; then date -u +"cycle $c quiet %H:%M:%S" >> $OUT/log; else date -u +"cycle $c disturbed %H:%M:%S" >> $OUT/log; fi
done
date -u +"done %H:%M:%S" >> $OUT/log
