#!/usr/bin/env bash
# A real single-node SLURM cluster from Debian packages (Debian 12, SLURM 22.05), for CI:
#   tests/slurm/cluster.sh start   install if needed, configure, start munged/slurmctld/slurmd, wait until idle
#   tests/slurm/cluster.sh stop    stop the daemons by PID
# Runs as root without systemd. Two fake GPUs (gres on /dev/null and /dev/zero) so that rules
# asking for gpu=1 are scheduled with --gpus=1; jobs then run on the CPU. No accounting
# daemon: callers use `--slurm-status-command squeue`, and MinJobAge keeps finished jobs
# visible to squeue/scontrol for an hour.
set -euo pipefail

STATE=/tmp/lowdensity-slurm
CONF=/etc/slurm

install() {
  if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >/dev/null
    apt-get install -y -q --no-install-recommends slurm-wlm munge >/dev/null
  fi
}

configure() {
  mkdir -p "$CONF" "$STATE" /var/spool/slurmctld /var/spool/slurmd /var/log/slurm /run/munge
  cat > "$CONF/slurm.conf" <<CONF_EOF
ClusterName=lowdensity
SlurmctldHost=localhost
SlurmUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
GresTypes=gpu
MinJobAge=3600
ReturnToService=2
SlurmdParameters=config_overrides
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
NodeName=localhost NodeAddr=127.0.0.1 CPUs=4 RealMemory=20000 Gres=gpu:2 State=UNKNOWN
PartitionName=main Nodes=localhost Default=YES MaxTime=INFINITE State=UP
CONF_EOF
  cat > "$CONF/gres.conf" <<CONF_EOF
NodeName=localhost Name=gpu File=/dev/null
NodeName=localhost Name=gpu File=/dev/zero
CONF_EOF
  [ -s /etc/munge/munge.key ] || { dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key 2>/dev/null; }
  chown -R munge:munge /etc/munge /run/munge /var/lib/munge /var/log/munge 2>/dev/null || true
  chmod 400 /etc/munge/munge.key
}

start() {
  install
  configure
  munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1 || runuser -u munge -- /usr/sbin/munged --pid-file=/run/munge/munged.pid
  slurmctld -i
  slurmd -N localhost
  for _ in $(seq 60); do
    if [ "$(sinfo -h -n localhost -o %T 2>/dev/null)" = "idle" ]; then
      echo "SLURM up: $(sinfo -h -o '%P %D %c cpus %m MB %G %T')"
      return 0
    fi
    sleep 1
  done
  echo "SLURM did not come up; logs:" >&2
  tail -n 30 /var/log/slurm/slurmctld.log /var/log/slurm/slurmd.log >&2 || true
  return 1
}

stop() {
  local pids=()
  local pid
  for pid_file in "$STATE/slurmd.pid" "$STATE/slurmctld.pid" /run/munge/munged.pid; do
    pid=$(cat "$pid_file" 2>/dev/null || true)
    if [ -n "$pid" ] && kill "$pid" 2>/dev/null; then
      pids+=("$pid")
    fi
  done
  for pid in "${pids[@]}"; do  # wait until they are gone, so that a restart starts afresh
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
  done
  rm -rf /var/spool/slurmctld/* "$STATE"/*.pid
}

"${1:?usage: cluster.sh start|stop}"
