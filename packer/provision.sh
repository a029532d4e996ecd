#!/bin/sh
# Runs as root on the build VM, after agent.pkr.hcl uploaded the monkeyci
# binary and the unit to /tmp. Whatever it leaves is in every agent.
set -eu

# The base image's own first boot (cloud-init, apt) may still be running.
cloud-init status --wait >/dev/null || true

# Docker from the distribution: one package, updated with the rest of the
# system. curl is for the user data's metadata request; git, git-lfs and
# ssh for the agent's mirrors (submodules, LFS files, deploy keys).
export DEBIAN_FRONTEND=noninteractive
apt-get -o DPkg::Lock::Timeout=600 update
apt-get -o DPkg::Lock::Timeout=600 install -y --no-install-recommends docker.io curl ca-certificates iptables git git-lfs openssh-client
systemctl enable docker.service

# Containers never reach the metadata service (169.254.169.254: the
# instance principal's credentials) nor another build's network: rules in
# the mangle table, put in place before docker starts, which requires them.
install -d -m 0755 /usr/local/lib/monkeyci
install -m 0755 -o root -g root /tmp/firewall.sh /usr/local/lib/monkeyci/firewall.sh
install -m 0644 -o root -g root /tmp/monkeyci-firewall.service /etc/systemd/system/monkeyci-firewall.service
rm -f /tmp/firewall.sh /tmp/monkeyci-firewall.service
systemctl daemon-reload
systemctl enable monkeyci-firewall.service
# Address pools for a network per build: docker's default ones hold about
# 30 networks, these 1,024 (beside docker0's 172.17.0.0/16, kept).
install -d -m 0755 /etc/docker
install -m 0644 -o root -g root /tmp/docker-daemon.json /etc/docker/daemon.json
rm -f /tmp/docker-daemon.json
# Both take effect now, so a mistake in either fails this build, not every
# agent: docker starts again, after the rules it requires.
systemctl restart docker.service
iptables -w -t mangle -C FORWARD -j MONKEYCI-FIREWALL

install -d -m 0755 /etc/monkeyci
# The agent's credential lives here once it has joined.
install -d -m 0700 /var/lib/monkeyci
install -m 0755 -o root -g root /tmp/monkeyci /usr/local/bin/monkeyci
install -m 0644 -o root -g root /tmp/monkeyci-agent.service /etc/systemd/system/monkeyci-agent.service
rm -f /tmp/monkeyci /tmp/monkeyci-agent.service
# Fails the build here, not on every agent, if the binary is for another
# architecture or not static.
/usr/local/bin/monkeyci --version

# Enabled, not started: it starts on an instance's first boot, once
# cloud-init has written /etc/monkeyci/agent.env (until then the
# unit's ConditionPathExists skips it).
systemctl daemon-reload
systemctl enable monkeyci-agent.service

# Each instance's first boot should be cloud-init's first: drop this VM's
# state, and the throwaway SSH key Packer logged in with.
cloud-init clean --logs
if [ -n "${SSH_USERNAME:-}" ]; then
  home=$(getent passwd "$SSH_USERNAME" | cut -d: -f6)
  [ -z "$home" ] || rm -f "$home/.ssh/authorized_keys"
fi
