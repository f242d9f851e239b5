#!/usr/bin/env bash
# Stop the test cluster that start_cluster.sh started in DIR.
dir=$(realpath "$1")
for daemon in slurmd slurmctld; do
  [ -f "$dir/$daemon.pid" ] && kill "$(cat "$dir/$daemon.pid")" 2>/dev/null
done
exit 0
