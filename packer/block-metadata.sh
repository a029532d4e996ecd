#!/bin/sh
# Keeps containers from the cloud's metadata service, 169.254.169.254: on
# Oracle Cloud it hands out the instance principal's credentials (and the
# user data, with the agent's join token) to whoever asks from the
# instance, and a build is untrusted code. What containers send there is
# forwarded by the host, so it passes docker's DOCKER-USER chain, which
# docker creates if missing and never flushes: this script puts a jump to
# its own chain there, once however often it runs (before or after docker
# starts). DNS (port 53) stays open: on OCI the same address is the VCN's
# resolver. The host itself (cloud-init, the agent) is not held: it does
# not go through FORWARD.
set -eu

chain=MONKEYCI-METADATA
metadata=169.254.169.254/32

# The chain is made fresh each time: its rules are this script's alone.
iptables -w -N "$chain" 2>/dev/null || iptables -w -F "$chain"
iptables -w -A "$chain" -p udp --dport 53 -j RETURN
iptables -w -A "$chain" -p tcp --dport 53 -j RETURN
iptables -w -A "$chain" -j DROP

iptables -w -N DOCKER-USER 2>/dev/null || true
# docker0 and the bridges of user-defined networks (br-<id>), a build's.
for bridge in docker0 br-+; do
	iptables -w -C DOCKER-USER -i "$bridge" -d "$metadata" -j "$chain" 2>/dev/null ||
		iptables -w -I DOCKER-USER -i "$bridge" -d "$metadata" -j "$chain"
done
