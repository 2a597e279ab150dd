#!/usr/bin/env bash
# Bring up a one-node SLURM cluster on this machine (as root), for the slurm-marked tests.
#   .ci/slurm-up.sh        installs slurmctld, slurmd, munge, slurmdbd and MariaDB (Debian) if needed, writes
#                          /etc/slurm/slurm.conf, starts the daemons and waits until the node is idle
#   .ci/slurm-down.sh      stops them again (by the PIDs recorded in /run/advprover-slurm)
# Accounting (slurmdbd + MariaDB) is on: submitit reads job states through sacct. AuthInfo=cred_expire=10
# makes a requeued job start again within seconds (the default waits about two minutes). The node
# advertises ADVPROVER_SLURM_CPUS CPUs (default 8, more than the machine may have: SlurmdParameters=
# config_overrides) so that every role of a small preset runs at once; jobs still share the real cores.
set -euo pipefail
state=/run/advprover-slurm
if [ -e "$state/slurmctld.pid" ] && sinfo -h -o %t 2>/dev/null | grep -qE '^(idle|mix|alloc)'; then
  echo "slurm-up: already up"; sinfo; exit 0
fi
if [ "$(id -u)" != 0 ]; then echo "slurm-up: must run as root" >&2; exit 1; fi
cpus=${ADVPROVER_SLURM_CPUS:-8}
export DEBIAN_FRONTEND=noninteractive
t0=$(date +%s)
packages="slurmctld slurmd slurm-client munge slurmdbd mariadb-server"
if ! dpkg -s $packages >/dev/null 2>&1; then
  echo "slurm-up: installing $packages"
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends $packages >/dev/null
fi
echo "slurm-up: packages ready after $(( $(date +%s) - t0 )) s"
mkdir -p "$state" /run/slurm /run/munge /run/mysqld /var/spool/slurmctld /var/spool/slurmd /var/log/slurm \
         /var/log/munge /var/lib/munge
chown munge:munge /run/munge /var/log/munge /var/lib/munge
if [ ! -s /etc/munge/munge.key ]; then
  mungekey --create --force; chown munge:munge /etc/munge/munge.key; chmod 400 /etc/munge/munge.key
fi
memory=$(( $(awk '/MemTotal/{print $2}' /proc/meminfo) / 1024 - 1024 ))
cat > /etc/slurm/slurm.conf <<CONF
ClusterName=advprover-ci
SlurmctldHost=localhost
SlurmUser=root
AuthType=auth/munge
AuthInfo=cred_expire=10
CredType=cred/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=6819
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SlurmdParameters=config_overrides
ReturnToService=2
SlurmctldPidFile=/run/slurm/slurmctld.pid
SlurmdPidFile=/run/slurm/slurmd.pid
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
MinJobAge=300
KillWait=5
InactiveLimit=0
SchedulerParameters=sched_interval=2
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$memory State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
runuser -u munge -- /usr/sbin/munged
cp /run/munge/munged.pid "$state/munged.pid"
chown mysql:mysql /run/mysqld
/usr/sbin/mariadbd --user=mysql --bind-address=127.0.0.1 --socket=/run/mysqld/mysqld.sock \
    --pid-file=/run/mysqld/mysqld.pid >/var/log/slurm/mariadb.log 2>&1 &
for _ in $(seq 1 60); do mariadb -uroot -e 'select 1' >/dev/null 2>&1 && break; sleep 0.5; done
cp /run/mysqld/mysqld.pid "$state/mariadbd.pid"
mariadb -uroot -e "CREATE DATABASE IF NOT EXISTS slurm_acct_db; CREATE USER IF NOT EXISTS 'slurm'@'localhost' \
IDENTIFIED BY 'slurmpw'; GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';"
cat > /etc/slurm/slurmdbd.conf <<CONF
AuthType=auth/munge
DbdHost=localhost
SlurmUser=root
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=slurm
StoragePass=slurmpw
StorageLoc=slurm_acct_db
PidFile=/run/slurm/slurmdbd.pid
LogFile=/var/log/slurm/slurmdbd.log
CONF
chmod 600 /etc/slurm/slurmdbd.conf
/usr/sbin/slurmdbd
for _ in $(seq 1 40); do
  [ -s /run/slurm/slurmdbd.pid ] && ss -ltn 2>/dev/null | grep -q ':6819 ' && break; sleep 0.25
done
cp /run/slurm/slurmdbd.pid "$state/slurmdbd.pid"
/usr/sbin/slurmctld
/usr/sbin/slurmd -N localhost
for _ in $(seq 1 60); do sinfo -h -o %t 2>/dev/null | grep -qx idle && break; sleep 0.5; done
cp /run/slurm/slurmctld.pid "$state/slurmctld.pid"
cp /run/slurm/slurmd.pid "$state/slurmd.pid"
sinfo
for _ in $(seq 1 40); do sacct -n -X >/dev/null 2>&1 && break; sleep 0.5; done
echo "slurm-up: cluster idle after $(( $(date +%s) - t0 )) s"
