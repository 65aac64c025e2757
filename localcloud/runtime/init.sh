#!/bin/sh
# SPDX-License-Identifier: GPL-3.0-or-later
# Inside the instance, as PID 1: per-instance first-boot steps (the part of cloud-init the
# local cloud offers), the host key block on the console, then sshd in its place.
# From the runtime: LOCALCLOUD_ID, LOCALCLOUD_IP, LOCALCLOUD_PORT, LOCALCLOUD_USER.
set -u
umask 022
seed=/run/localcloud/seed
user="$LOCALCLOUD_USER"
run_user_script=no

echo "localcloud-init: instance $LOCALCLOUD_ID booting on $LOCALCLOUD_IP"

first_boot() {
    rm -f /etc/ssh/ssh_host_*
    if [ -d "$seed/host_keys" ]; then
        cp "$seed"/host_keys/ssh_host_* /etc/ssh/ 2>/dev/null
        chmod 600 /etc/ssh/ssh_host_*_key 2>/dev/null
        chmod 644 /etc/ssh/ssh_host_*_key.pub 2>/dev/null
    fi
    ssh-keygen -A >/dev/null
    if ! id -u "$user" >/dev/null 2>&1; then
        useradd --create-home --shell /bin/bash --groups adm,sudo "$user"
        # No password, but not locked either: sshd (without PAM) refuses locked accounts even with keys.
        usermod --password '*' "$user"
    fi
    sudoers=/etc/sudoers.d/90-cloud-init-users
    grep -q "^$user " "$sudoers" 2>/dev/null || printf '%s ALL=(ALL) NOPASSWD:ALL\n' "$user" >>"$sudoers"
    chmod 440 "$sudoers"
    home=$(getent passwd "$user" | cut -d: -f6)
    group=$(id -gn "$user")
    install -d -m 700 -o "$user" -g "$group" "$home/.ssh"
    keys="$home/.ssh/authorized_keys"
    touch "$keys"
    while IFS= read -r key; do
        [ -n "$key" ] && ! grep -qxF "$key" "$keys" && printf '%s\n' "$key" >>"$keys"
    done <"$seed/authorized_keys"
    chown "$user:$group" "$keys"
    chmod 600 "$keys"
    grep -q "[[:space:]]$(hostname)\$" /etc/hosts || printf '%s\t%s\n' "$LOCALCLOUD_IP" "$(hostname)" >>/etc/hosts
    hostname >/etc/hostname
    if [ -f "$seed/user-script" ]; then
        mkdir -p /var/lib/cloud/instance/scripts
        cp "$seed/user-script" /var/lib/cloud/instance/scripts/part-001
        chmod 700 /var/lib/cloud/instance/scripts/part-001
        run_user_script=yes
    fi
    mkdir -p /var/lib/cloud/data
    echo "$LOCALCLOUD_ID" >/var/lib/cloud/data/instance-id
}

# cloud-init's per-instance modules run when the instance id changes, also in an image of an image.
if [ "$(cat /var/lib/cloud/data/instance-id 2>/dev/null)" != "$LOCALCLOUD_ID" ]; then
    first_boot
fi

echo "ec2: #############################################################"
echo "ec2: -----BEGIN SSH HOST KEY FINGERPRINTS-----"
for pub in /etc/ssh/ssh_host_*key.pub; do
    echo "ec2: $(ssh-keygen -l -f "$pub")"
done
echo "ec2: -----END SSH HOST KEY FINGERPRINTS-----"
echo "ec2: #############################################################"
echo "-----BEGIN SSH HOST KEY KEYS-----"
cat /etc/ssh/ssh_host_*key.pub
echo "-----END SSH HOST KEY KEYS-----"

mkdir -p /run/sshd /run/lock
chmod 755 /run/sshd /run/lock
if [ "$run_user_script" = yes ]; then
    (/var/lib/cloud/instance/scripts/part-001 2>&1 | tee -a /var/log/cloud-init-output.log) 3>&- &
fi
set -- -o "ListenAddress=$LOCALCLOUD_IP:$LOCALCLOUD_PORT" \
    -o "AuthorizedKeysCommand=/usr/lib/localcloud/instance-connect-keys %u" \
    -o "AuthorizedKeysCommandUser=nobody" \
    -o "PidFile=none"
# A broken sshd or sshd_config (say, from a customization) fails the boot here, with the reason on the console.
if [ ! -x /usr/sbin/sshd ]; then
    echo "localcloud-init: /usr/sbin/sshd is missing, so this instance cannot accept SSH"
    exit 1
fi
if ! /usr/sbin/sshd -t "$@"; then
    echo "localcloud-init: sshd rejects its configuration (see above), so this instance cannot accept SSH"
    exit 1
fi
echo "localcloud-init: starting sshd on $LOCALCLOUD_IP:$LOCALCLOUD_PORT"
exec /usr/sbin/sshd -D -e "$@" 2>&3 3>&-
