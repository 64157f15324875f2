#!/usr/bin/env bash
# Starts the field relay with ROS 2 sourced; ExecStart of deploy/dronefleet-relay.service.
#
# Environment (set in the unit or /etc/dronefleet/relay.env):
#   ROS_DISTRO      humble, jazzy, …: /opt/ros/$ROS_DISTRO/setup.bash is sourced (unset: no ROS,
#                   fine for --source sim)
#   ROS_WORKSPACE   colcon workspace holding dronefleet_interfaces (and any other interface
#                   packages); its install/setup.bash is sourced after ROS 2
#   RELAY_HOME      the repository checkout with node_modules (default /opt/dronefleet)
#   RELAY_CONFIG    the relay's YAML configuration (read by relay/config.ts)
#   NODE            node binary (default: node on PATH; must be ≥ 22.12)
# Extra arguments are passed to the relay (e.g. `relay-start.sh doctor`).
set -euo pipefail

RELAY_HOME="${RELAY_HOME:-/opt/dronefleet}"
NODE="${NODE:-node}"

if [[ -n "${ROS_DISTRO:-}" ]]; then
  ros_setup="/opt/ros/${ROS_DISTRO}/setup.bash"
  if [[ ! -f "$ros_setup" ]]; then
    echo "relay-start: $ros_setup not found; is ROS 2 ${ROS_DISTRO} installed?" >&2
    exit 1
  fi
  # ROS setup scripts read unset variables; do not let `set -u` abort them.
  set +u
  # shellcheck disable=SC1090
  source "$ros_setup"
  if [[ -n "${ROS_WORKSPACE:-}" ]]; then
    if [[ -f "${ROS_WORKSPACE}/install/setup.bash" ]]; then
      # shellcheck disable=SC1091
      source "${ROS_WORKSPACE}/install/setup.bash"
    else
      echo "relay-start: ${ROS_WORKSPACE}/install/setup.bash not found; build it with colcon (deploy/DEPLOY.md)" >&2
      exit 1
    fi
  fi
  set -u
fi

cd "$RELAY_HOME"
# exec, and tsx as a loader (--import) rather than its CLI: one process, so systemd's SIGTERM
# reaches the relay itself, which stops cleanly (exit 0).
exec "$NODE" --import tsx relay/cli.ts "$@"
