#!/usr/bin/env bash
# Run a command in a private network namespace: loopback plus a veth pair that exists
# only inside it. WebRTC needs a non-loopback host candidate; inside this namespace no
# packet can leave the machine, whatever addresses ICE tries. The mounts are private
# too: a test that mounts a small disk leaves nothing mounted behind it.
set -euo pipefail
if [ "${RECORDER_NETNS:-}" = 1 ]; then exec "$@"; fi
if ! unshare --net true 2>/dev/null; then
  echo "netns.sh: cannot create a network namespace (needs root or user namespaces)." >&2
  if [ -n "${CI:-}" ]; then exit 1; fi
  echo "netns.sh: running on the host network; the server config keeps ICE on loopback." >&2
  exec "$@"
fi
exec unshare --net --mount bash -c '
  ip link set lo up
  ip link add rec0 type veth peer name rec1
  ip addr add 10.251.0.1/24 dev rec0
  ip addr add 10.251.0.2/24 dev rec1
  ip link set rec0 up
  ip link set rec1 up
  export RECORDER_NETNS=1
  exec "$@"' netns "$@"
