#!/bin/bash
# run_sep.sh plus the peak probe first (for report.py's % columns); one sitting.
cd /tmp/anchors
OUT=${1:-results/sep}
mkdir -p $OUT
date -u
./peak/target/release/peak --tsv $OUT/peak.tsv > $OUT/peak.txt 2>&1
date -u
for s in seed decode1 decode8 prefill512 long2048 seed_r4 seed_r16 seed_r64 seed_r128 decode1_cold decode8_cold; do
  (cd rust-peers && ./target/release/rust-peers --shapes $s --peak-file ../$OUT/peak.tsv --tsv ../$OUT/rust-$s.tsv) > $OUT/rust-$s.txt 2>&1
done
date -u
.venv/bin/python python-peers/bench.py --tools numpy,ort --peak-file $OUT/peak.tsv --tsv $OUT/python-peers.tsv > $OUT/python-peers.txt 2>&1
date -u
