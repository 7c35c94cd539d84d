#!/usr/bin/env bash
# Two extra RabbitMQ nodes on this machine, clustered, for trying failover by hand (the fault
# tests start their own through faults/testinfra, which does the same steps). The system node
# rabbit@localhost on 5672 is left alone. No Docker: the installed rabbitmq-server, with
# RABBITMQ_NODENAME / RABBITMQ_NODE_PORT / RABBITMQ_DIST_PORT / RABBITMQ_MNESIA_BASE per node
# and the shared Erlang cookie of the rabbitmq user (/var/lib/rabbitmq/.erlang.cookie), or
# $HOME/.erlang.cookie when not run as root.
#
#   scripts/rabbit-cluster.sh start          start nodes a and b, join b to a, print AMQP_URL
#   scripts/rabbit-cluster.sh status         cluster_status as seen by node a
#   scripts/rabbit-cluster.sh stop-node b    stop one node (a or b): watch clients move
#   scripts/rabbit-cluster.sh start-node b   start it again (it rejoins the cluster by itself)
#   scripts/rabbit-cluster.sh join           (re)join b to a's cluster
#   scripts/rabbit-cluster.sh stop           stop both nodes and delete their data
#
# Environment: RABBIT_CLUSTER_DIR (default /tmp/social-rabbit-cluster), RABBIT_CLUSTER_PORT
# (default 5673: node a = 5673, node b = 5674; distribution ports 25673, 25674).
set -euo pipefail

DIR=${RABBIT_CLUSTER_DIR:-/tmp/social-rabbit-cluster}
BASE_PORT=${RABBIT_CLUSTER_PORT:-5673}
BIN=/usr/lib/rabbitmq/bin

node_name() { echo "social-$1@localhost"; }
node_port() { case $1 in a) echo "$BASE_PORT" ;; b) echo $((BASE_PORT + 1)) ;; *) echo "node must be a or b" >&2; exit 2 ;; esac; }
node_dir() { echo "$DIR/$1"; }

# as_rabbit runs a RabbitMQ script as the rabbitmq user when we are root (it refuses root and
# needs the rabbitmq user's cookie), with a clean environment plus the given variables.
as_rabbit() {
  local home=$HOME
  if [[ $(id -u) == 0 ]]; then
    runuser -u rabbitmq -- env -i PATH="$PATH" LANG=C.UTF-8 HOME=/var/lib/rabbitmq "$@"
  else
    env -i PATH="$PATH" LANG=C.UTF-8 HOME="$home" "$@"
  fi
}

ctl() { # node, args...
  local n=$1; shift
  as_rabbit ERL_EPMD_ADDRESS=127.0.0.1 "$BIN/rabbitmqctl" -q -n "$(node_name "$n")" "$@"
}

prepare() { # node
  local n=$1 d port
  d=$(node_dir "$n"); port=$(node_port "$n")
  mkdir -p "$d"
  chmod 755 "$DIR" "$d"
  printf 'listeners.tcp.default = 127.0.0.1:%s\nloopback_users.guest = true\nlog.console = false\n' "$port" >"$d/rabbitmq.conf"
  : >"$d/rabbitmq-env.conf" # not /etc/rabbitmq's, which names the system node
  echo '[].' >"$d/enabled_plugins"
  [[ $(id -u) == 0 ]] && chown -R rabbitmq:rabbitmq "$d"
  return 0
}

start_node() { # node
  local n=$1 d port
  d=$(node_dir "$n"); port=$(node_port "$n")
  [[ -d $d ]] || prepare "$n"
  if ctl "$n" ping >/dev/null 2>&1; then echo "node $(node_name "$n") already runs"; return; fi
  (cd "$d" && as_rabbit \
    RABBITMQ_NODENAME="$(node_name "$n")" \
    RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 \
    RABBITMQ_NODE_PORT="$port" \
    RABBITMQ_DIST_PORT=$((port + 20000)) \
    RABBITMQ_MNESIA_BASE="$d/mnesia" \
    RABBITMQ_LOG_BASE="$d/log" \
    RABBITMQ_PID_FILE="$d/rabbitmq.pid" \
    RABBITMQ_CONFIG_FILE="$d/rabbitmq.conf" \
    RABBITMQ_CONF_ENV_FILE="$d/rabbitmq-env.conf" \
    RABBITMQ_ENABLED_PLUGINS_FILE="$d/enabled_plugins" \
    RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}" \
    ERL_EPMD_ADDRESS=127.0.0.1 \
    "$BIN/rabbitmq-server" -detached)
  ctl "$n" wait "$d/rabbitmq.pid" --timeout 90 >/dev/null
  echo "node $(node_name "$n") runs on 127.0.0.1:$port"
}

stop_node() { # node
  local n=$1 d
  d=$(node_dir "$n")
  if [[ -f $d/rabbitmq.pid ]] && kill -0 "$(cat "$d/rabbitmq.pid")" 2>/dev/null; then
    ctl "$n" stop "$d/rabbitmq.pid" >/dev/null || kill -9 "$(cat "$d/rabbitmq.pid")"
    echo "node $(node_name "$n") stopped"
  fi
}

join() {
  if ctl a cluster_status 2>/dev/null | grep -q "$(node_name b)"; then
    echo "$(node_name b) is already a member of $(node_name a)'s cluster"
    return
  fi
  ctl b stop_app
  ctl b reset
  ctl b join_cluster "$(node_name a)"
  ctl b start_app
  ctl b await_startup --timeout 60
  echo "$(node_name b) joined $(node_name a)"
}

case ${1:-} in
  start)
    start_node a & start_node b & wait
    join
    echo "AMQP_URL=amqp://guest:guest@127.0.0.1:$(node_port a)/,amqp://guest:guest@127.0.0.1:$(node_port b)/"
    ;;
  status) ctl a cluster_status ;;
  join) join ;;
  stop-node) stop_node "${2:?stop-node a|b}" ;;
  start-node) start_node "${2:?start-node a|b}" ;;
  stop)
    stop_node b || true
    stop_node a || true
    rm -rf "$DIR"
    ;;
  *) sed -n '2,20p' "$0"; exit 2 ;;
esac
