#!/bin/sh
# Run by TestFirewallFromBridges in a network and mount namespace of its
# own (unshare --net --mount): "containers" in namespaces of their own on
# bridges named like docker's (c and c2 on br-test, d on br-other), a
# stand-in metadata service at 169.254.169.254 and an outside server
# (namespace m, both addresses), routed through this namespace as on an
# instance, whose filter table lets everything through: the state docker
# leaves while it puts its FORWARD jumps back. Prints what the containers
# and the host reach, before and after firewall.sh ($1).
set -eu
mkdir -p /run/netns && mount -t tmpfs monkeyci-test /run/netns
# container NAME BRIDGE ADDRESS: a namespace with one port on BRIDGE.
container() {
	ip netns add "$1"
	ip link add "$1-host" type veth peer name "$1-in"
	ip link set "$1-in" netns "$1"
	ip link set "$1-host" master "$2" up
	ip netns exec "$1" ip addr add "$3/24" dev "$1-in"
	ip netns exec "$1" ip link set "$1-in" up
	ip netns exec "$1" ip link set lo up
	ip netns exec "$1" ip route add default via "${3%.*}.1"
}
for b in br-test:10.9.0.1 br-other:10.8.0.1; do
	ip link add "${b%%:*}" type bridge
	ip addr add "${b#*:}/24" dev "${b%%:*}"
	ip link set "${b%%:*}" up
done
container c br-test 10.9.0.2
container c2 br-test 10.9.0.3
container d br-other 10.8.0.2
ip netns add m
ip link add m0 type veth peer name m1
ip link set m1 netns m
ip addr add 169.254.0.1/16 dev m0
ip addr add 192.0.2.1/24 dev m0
ip link set m0 up
ip netns exec m ip addr add 169.254.169.254/16 dev m1
ip netns exec m ip addr add 192.0.2.2/24 dev m1
ip netns exec m ip link set m1 up
ip netns exec m ip route add default via 169.254.0.1
sysctl -qw net.ipv4.ip_forward=1
iptables -w -P FORWARD ACCEPT
# Listeners that outlive this script would hold its output open.
listeners=""
listen() { # NAMESPACE PORT ANSWER
	ip netns exec "$1" busybox nc -ll -p "$2" -e echo "$3" </dev/null >/dev/null 2>&1 &
	listeners="$listeners $!"
}
trap 'kill $listeners' EXIT
listen m 80 metadata
listen m 53 resolver
listen m 8080 outside
listen c 80 neighbour
listen d 80 other-build

# probe WHO ADDRESS PORT once|retry: what ADDRESS:PORT says to WHO (a
# container's namespace, or 'host').
probe() {
	run="ip netns exec $1"
	[ "$1" = host ] && run=""
	for i in 1 2 3 4 5 6 7 8 9 10; do # the listeners may not be up yet
		out=$($run busybox nc -w 2 "$2" "$3" </dev/null 2>/dev/null) && break
		[ "$4" = once ] && break
		sleep 0.2
	done
	echo "$1 to $2:$3: ${out:-none}"
}
report() {
	echo "$1"
	probe c 169.254.169.254 80 "$2"
	probe c 169.254.169.254 53 retry
	probe c 10.8.0.2 80 "$2"
	probe d 10.9.0.2 80 "$2"
	probe c2 10.9.0.2 80 retry
	probe c 192.0.2.2 8080 retry
	probe host 169.254.169.254 80 retry
	probe host 10.9.0.2 80 retry
}
report before retry
sh "$1"
report after once
