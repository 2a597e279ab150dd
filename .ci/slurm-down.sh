#!/usr/bin/env bash
# Stop the daemons .ci/slurm-up.sh started, by the PIDs it recorded (in reverse order of starting).
state=/run/advprover-slurm
for daemon in slurmd slurmctld slurmdbd mariadbd munged; do
  file=$state/$daemon.pid
  [ -s "$file" ] || continue
  pid=$(cat "$file")
  if kill "$pid" 2>/dev/null; then
    for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    echo "slurm-down: stopped $daemon ($pid)"
  fi
  rm -f "$file"
done
