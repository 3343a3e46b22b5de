#!/bin/sh
# Form the 3-primary, 3-replica Valkey Cluster of compose/cluster.yaml, once: split the slots so
# that each of the shard tags {s0}, {s1}, {s2} (slots 11097, 15224, 2843) has its own primary,
# let the nodes meet, make valkey-4..6 replicas of valkey-1..3, and wait for cluster_state:ok.
# Run again on a formed cluster, it only checks the state.
set -eu
if valkey-cli -h valkey-1 cluster info | grep -q cluster_state:ok; then
  echo "cluster already formed"; exit 0
fi
valkey-cli -h valkey-1 cluster addslotsrange 0 6970
valkey-cli -h valkey-2 cluster addslotsrange 6971 13160
valkey-cli -h valkey-3 cluster addslotsrange 13161 16383
for n in 2 3 4 5 6; do
  valkey-cli -h valkey-1 cluster meet "$(getent hosts valkey-$n | cut -d' ' -f1)" 6379
done
sleep 2
for n in 1 2 3; do
  id=$(valkey-cli -h valkey-$n cluster myid)
  until valkey-cli -h valkey-$((n + 3)) cluster replicate "$id" | grep -q OK; do sleep 1; done
done
until valkey-cli -h valkey-1 cluster info | grep -q cluster_state:ok; do sleep 1; done
echo "cluster formed"
