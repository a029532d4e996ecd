#!/bin/sh
# Run by TestMetadataBlockedFromBridges in a network and mount namespace of
# its own (unshare --net --mount): a "container" namespace on a bridge named
# like docker's (br-test) and a stand-in metadata service at
# 169.254.169.254 in another, routed through this one as on an instance.
# Prints what the container and the host reach, before and after
# block-metadata.sh ($1), which then runs as before docker started.
set -eu
mkdir -p /run/netns && mount -t tmpfs monkeyci-test /run/netns
ip netns add c
ip netns add m
ip link add br-test type bridge
ip addr add 10.9.0.1/24 dev br-test
ip link set br-test up
ip link add v0 type veth peer name v1
ip link set v1 netns c
ip link set v0 master br-test up
ip netns exec c ip addr add 10.9.0.2/24 dev v1
ip netns exec c ip link set v1 up
ip netns exec c ip route add default via 10.9.0.1
ip link add m0 type veth peer name m1
ip link set m1 netns m
ip addr add 169.254.0.1/16 dev m0
ip link set m0 up
ip netns exec m ip addr add 169.254.169.254/16 dev m1
ip netns exec m ip link set m1 up
ip netns exec m ip route add default via 169.254.0.1
sysctl -qw net.ipv4.ip_forward=1
# Listeners that outlive this script would hold its output open.
ip netns exec m busybox nc -ll -p 80 -e echo metadata </dev/null >/dev/null 2>&1 &
listeners=$!
ip netns exec m busybox nc -ll -p 53 -e echo resolver </dev/null >/dev/null 2>&1 &
listeners="$listeners $!"
trap 'kill $listeners' EXIT

# probe PORT RUNNER once|retry: what 169.254.169.254:PORT says to whoever
# RUNNER runs as ('ip netns exec c': the container; '': the host).
probe() {
	for i in 1 2 3 4 5 6 7 8 9 10; do # the listeners may not be up yet
		out=$($2 busybox nc -w 2 169.254.169.254 "$1" </dev/null 2>/dev/null) && break
		[ "$3" = once ] && break
		sleep 0.2
	done
	echo "${out:-none}"
}
echo "before container 80: $(probe 80 'ip netns exec c' retry)"
echo "before container 53: $(probe 53 'ip netns exec c' retry)"
sh "$1"
# What docker does when it starts: FORWARD goes through DOCKER-USER first.
iptables -w -I FORWARD -j DOCKER-USER
echo "after container 80: $(probe 80 'ip netns exec c' once)"
echo "after container 53: $(probe 53 'ip netns exec c' retry)"
echo "after host 80: $(probe 80 '' retry)"
