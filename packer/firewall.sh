#!/bin/sh
# The agent host's firewall: what containers send is forwarded by the host,
# and a build is untrusted code. Two promises:
#  - no container reaches the cloud's metadata service, 169.254.169.254: on
#    Oracle Cloud it hands out the instance principal's credentials (and the
#    user data, with the agent's join token) to whoever asks from the
#    instance. DNS (port 53) stays open: on OCI the same address is the
#    VCN's resolver.
#  - no container reaches a container of another docker network (another
#    build's), by address.
# Docker keeps the second itself, in its filter table, but not always: each
# time a network is made it deletes and inserts again the FORWARD jumps to
# its DOCKER-USER and DOCKER-ISOLATION chains, and a packet that comes in
# between passes (seen: a job of one build fetched a page from another
# build's server while networks were being made). So the rules live in the
# mangle table's FORWARD, which docker never touches, in a chain of ours.
# Running this again changes nothing; it may run before or after docker.
# The host itself (cloud-init, the agent) is not held: it does not go
# through FORWARD.
set -eu

chain=MONKEYCI-FIREWALL
metadata=169.254.169.254/32

# The chain is made fresh each time: its rules are this script's alone.
iptables -w -t mangle -N "$chain" 2>/dev/null || iptables -w -t mangle -F "$chain"
# Frames between containers of one network are bridged, not routed (they
# come here only where br_netfilter is loaded): docker's to allow.
iptables -w -t mangle -A "$chain" -m physdev --physdev-is-bridged -j RETURN
# docker0 and the bridges of user-defined networks (br-<id>), a build's.
for bridge in docker0 br-+; do
	iptables -w -t mangle -A "$chain" -i "$bridge" -d "$metadata" -p udp --dport 53 -j RETURN
	iptables -w -t mangle -A "$chain" -i "$bridge" -d "$metadata" -p tcp --dport 53 -j RETURN
	iptables -w -t mangle -A "$chain" -i "$bridge" -d "$metadata" -j DROP
	for other in docker0 br-+; do
		iptables -w -t mangle -A "$chain" -i "$bridge" -o "$other" -j DROP
	done
done

iptables -w -t mangle -C FORWARD -j "$chain" 2>/dev/null ||
	iptables -w -t mangle -I FORWARD -j "$chain"
