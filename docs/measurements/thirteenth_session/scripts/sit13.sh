#!/bin/bash
# Thirteenth-session sitting: 2-thread ceiling. Cycles of: ceilings --threads 2 (seed), the
# per-library processes of inproc13.py (fl, ort, np), ceilings --threads 2 (prefill512 every
# other cycle). Output: /tmp/s13/sit/
OUT=/tmp/s13/sit; mkdir -p $OUT
EX=/work/main/target/release/examples/ceilings
SH=seed_r4,seed,seed_r16,long2048,prefill512
cd /tmp/anchors
for c in 1 2 3 4; do
  date -u +"cycle $c %H:%M:%S" >> $OUT/log
  $EX --threads 2 --rounds 10 > $OUT/ceil_seed_c$c.txt 2>&1
  for mode in fl ort np; do
    MODE=$mode T=2 .venv/bin/python /tmp/scratch/inproc13.py 6 $SH >> $OUT/rounds.tsv 2>> $OUT/err.txt
  done
  if [ $((c % 2)) = 0 ]; then
    $EX --threads 2 --rounds 6 --rows 512 --d-in 4096 --d-out 4096 --rank 16 > $OUT/ceil_prefill_c$c.txt 2>&1
  fi
done
date -u +"done %H:%M:%S" >> $OUT/log
