#!/bin/bash
# Fourteenth-session anchors sitting: the d_in-4096 shapes (the only ones 6dfcc05 changes),
# each shape's Rust peers (fused-lora through `project`) in a process of their own, then numpy and onnxruntime.
cd /tmp/anchors
OUT=${1:-results/sep14}
mkdir -p $OUT
date -u
for s in prefill512 decode1 decode8 decode1_cold decode8_cold; do
  (cd rust-peers && ./target/release/rust-peers --shapes $s --tsv ../$OUT/rust-$s.tsv) > $OUT/rust-$s.txt 2>&1
done
date -u
.venv/bin/python python-peers/bench.py --tools numpy,ort --shapes prefill512,decode1,decode8,decode1_cold,decode8_cold --tsv $OUT/python-peers.tsv > $OUT/python-peers.txt 2>&1
date -u
