#!/bin/bash
# Poll until two consecutive short 2-thread ceilings runs read the row block at >= 94 % of the
# probe, then start the sitting given as $1.
EX=/work/main/target/release/examples/ceilings
ok=0
while true; do
  v=$($EX --threads 2 --rounds 3 | grep "^| row block" | awk -F'|' '{print $5}' | awk '{print $1}')
  echo "$(date -u +%H:%M:%S) row block $v" >> /tmp/s13/poll.log
  if awk -v v="$v" 'BEGIN{exit !(v>=94)}'; then ok=$((ok+1)); else ok=0; fi
  if [ $ok -ge 2 ]; then break; fi
  sleep 45
done
echo "$(date -u +%H:%M:%S) quiet: starting $1" >> /tmp/s13/poll.log
"$@"
