#!/bin/sh
# Runs as root on the build VM, after agent.pkr.hcl uploaded the monkeyci
# binary and the unit to /tmp. Whatever it leaves is in every agent.
set -eu

# The base image's own first boot (cloud-init, apt) may still be running.
cloud-init status --wait >/dev/null || true

# Docker from the distribution: one package, updated with the rest of the
# system. curl is for the user data's metadata request.
export DEBIAN_FRONTEND=noninteractive
apt-get -o DPkg::Lock::Timeout=600 update
apt-get -o DPkg::Lock::Timeout=600 install -y --no-install-recommends docker.io curl ca-certificates
systemctl enable docker.service

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
