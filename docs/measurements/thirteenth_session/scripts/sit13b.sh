#!/bin/bash
# Thirteenth-session sitting b: 2-thread ceiling. Cycles of: ceilings --threads 2 at the seed
# widths, ranks 4, 8, 16; then one process each of inproc13.py for fl, ort, np. Output: $OUT
OUT=${1:-/tmp/s13/sitb}; mkdir -p $OUT
EX=/work/main/target/release/examples/ceilings
SH=seed_r4,seed,seed_r16,long2048,prefill512
cd /tmp/anchors
for c in 1 2 3 4; do
  date -u +"cycle $c %H:%M:%S" >> $OUT/log
  for r in 4 8 16; do
    $EX --threads 2 --rounds 10 --rank $r > $OUT/ceil_r${r}_c$c.txt 2>&1
  done
  for mode in fl ort np; do
    MODE=$mode T=2 .venv/bin/python /tmp/scratch/inproc13.py 6 $SH >> $OUT/rounds.tsv 2>> $OUT/err.txt
  done
done
date -u +"done %H:%M:%S" >> $OUT/log
