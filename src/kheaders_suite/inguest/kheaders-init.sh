#!/bin/sh
# kheaders-init: the suite's PID 1 for a guest booted by virtme-ng with --ssh over TCP.
#
# virtme-ng boots the kernel as always and runs this in place of its own init
# (kheaders_suite/guestinit.py says how). It reads the same kernel-command-line variables
# virtme-ng's init does (the kernel hands unknown name=value pairs to init as its
# environment) and does only what a test needs: kernel file systems, virtme-ng's writable
# overlays and host mounts, a static address on QEMU's user network, and sshd without PAM
# on virtme-ng's host key and login key. No udev, no DHCP client, no tmpfiles, no shell on
# the console: each exec costs tenths of a second under emulation.
#
# POSIX sh: no bashisms. It re-runs itself under busybox's shell where there is one: a
# static busybox (Debian's busybox-static) runs its applets (mount, mkdir, ln, ip, sleep)
# without an exec, and util-linux's mount loads seven libraries over 9p for every call.

PATH=/usr/sbin:/usr/bin:/sbin:/bin
export PATH
if [ -z "${KHEADERS_INIT_SHELL:-}" ]; then
    # On the host's root, /proc and /sys are the host's, shared over 9p: the guest's go over
    # them. This one with util-linux's mount: busybox's hangs on the host's /proc.
    mount -t proc -o nosuid,noexec,nodev proc /proc
    for shell in /bin/busybox /usr/bin/busybox; do
        if [ -x "$shell" ]; then
            export KHEADERS_INIT_SHELL="$shell"
            exec "$shell" sh "$0" "$@"
        fi
    done
    export KHEADERS_INIT_SHELL=sh
fi

log() {
    echo "<6>kheaders-init: $*" > /dev/kmsg
}

mounted() {
    while read -r _ point _; do
        [ "$point" = "$1" ] && return 0
    done < /proc/mounts
    return 1
}

# get VAR NAME: VAR set to the value of the variable called NAME (virtme_rw_overlay0, ...),
# without a subshell.
get() {
    eval "$1=\${$2:-}"
}

kernel_filesystems() {
    mount -t sysfs -o nosuid,noexec,nodev sys /sys
    mounted /run || mount -t tmpfs -o mode=0755 run /run
    mounted /dev || mount -t devtmpfs -o mode=0755,nosuid,noexec devtmpfs /dev
}

# One mkdir for every directory the mounts below need.
make_dirs() {
    dirs="/dev/pts /dev/shm /run/sshd /run/tmp"
    i=0
    while get dir "virtme_rw_overlay$i" && [ -n "$dir" ]; do
        dirs="$dirs /run/tmp/overlay$i/upper /run/tmp/overlay$i/work"
        i=$((i + 1))
    done
    i=0
    while get dir "virtme_initmount$i" && [ -n "$dir" ]; do
        [ -d "$dir" ] || dirs="$dirs $dir"
        i=$((i + 1))
    done
    # shellcheck disable=SC2086  # one word per directory
    mkdir -p $dirs
}

special_filesystems() {
    mount -t devpts -o gid=5,mode=620,noexec,nosuid devpts /dev/pts
    mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /dev/shm
    mount -t debugfs debugfs /sys/kernel/debug
    mount -t tracefs tracefs /sys/kernel/tracing
    mount -t configfs configfs /sys/kernel/config 2> /dev/null
    mount -t securityfs securityfs /sys/kernel/security 2> /dev/null
    [ -e /dev/fd ] || ln -s /proc/self/fd /dev/fd
}

# virtme-ng's read-only root, writable where it asks: a tmpfs-backed overlay each, at once.
overlays() {
    i=0
    pids=
    while get dir "virtme_rw_overlay$i" && [ -n "$dir" ]; do
        opts="lowerdir=$dir,upperdir=/run/tmp/overlay$i/upper,workdir=/run/tmp/overlay$i/work"
        mount -t overlay -o "xino=off,$opts" "virtme_rw_overlay$i" "$dir" &
        pids="$pids $!"
        i=$((i + 1))
    done
    # shellcheck disable=SC2086  # one word per pid
    [ -z "$pids" ] || wait $pids
}

# What the suite runs first over SSH, its agent (bash, env, python3 and the modules the agent
# imports), read once in the background while the rest boots: read cold over 9p when the
# agent starts, they took about a second of every boot under TCG.
warm_up() {
    /bin/bash -c :
    /usr/bin/env true
    /usr/bin/python3 -S -c "import base64, json, os, signal, subprocess, sys, time, typing"
}

host_mounts() {
    i=0
    while get dir "virtme_initmount$i" && [ -n "$dir" ]; do
        get access "virtme_initmount${i}_access"
        mount -t 9p -o "version=9p2000.L,trans=virtio,access=any,msize=524288,${access:-rw}" \
            "virtme.initmount$i" "$dir" || log "cannot mount virtme.initmount$i on $dir"
        i=$((i + 1))
    done
}

kernel_modules() {
    [ -n "${virtme_link_mods:-}" ] || return 0
    read -r release < /proc/sys/kernel/osrelease
    mount -n -t tmpfs none /lib/modules && ln -s "$virtme_link_mods" "/lib/modules/$release"
}

# QEMU's user network (virtme-ng's -netdev user) always leases 10.0.2.15 behind 10.0.2.2:
# the same address without a DHCP exchange.
network() {
    net=
    for dev in /sys/bus/virtio/drivers/virtio_net/virtio*/net/*; do
        [ -e "$dev" ] && net=${dev##*/}
    done
    echo "0 2147483647" > /proc/sys/net/ipv4/ping_group_range
    ip link set lo up
    if [ -z "$net" ]; then
        log "no virtio network device: no SSH"
        return 1
    fi
    ip link set "$net" up
    ip addr add 10.0.2.15/24 dev "$net"
    ip route add default via 10.0.2.2 dev "$net"
}

# virtme-ng made the host key and the login key on the host (virtme_ssh_cache).
sshd_config() {
    echo "HostKey $virtme_ssh_cache/etc/ssh/ssh_host_ed25519_key"
    echo "AuthorizedKeysFile $virtme_ssh_cache/id_virtme.pub"
    echo "PermitRootLogin prohibit-password"
    echo "PasswordAuthentication no"
    echo "KbdInteractiveAuthentication no"
    echo "UsePAM no"
    echo "StrictModes no"
    echo "UseDNS no"
    echo "PrintMotd no"
    echo "PrintLastLog no"
    echo "PidFile /run/sshd.pid"
    for server in /usr/lib/openssh/sftp-server /usr/lib/ssh/sftp-server; do
        [ -x "$server" ] && echo "Subsystem sftp $server" && return 0
    done
    return 0
}

start_sshd() {
    if [ -z "${virtme_ssh_cache:-}" ]; then
        log "virtme_ssh_cache is not set: no SSH (boot with vng --ssh)"
        return 1
    fi
    sshd_config > /run/sshd/config
    /usr/sbin/sshd -f /run/sshd/config || log "sshd failed to start (exit $?)"
}

kernel_filesystems
log "started"
[ -n "${virtme_hostname:-}" ] && echo "$virtme_hostname" > /proc/sys/kernel/hostname
[ -n "${nr_open:-}" ] && echo "$nr_open" > /proc/sys/fs/nr_open
make_dirs
special_filesystems
# sshd's start (its libraries read over 9p) is the longest step: it runs beside the rest.
start_sshd &
sshd_started=$!
warm_up > /dev/null 2>&1 &
overlays
host_mounts
kernel_modules
network
wait "$sshd_started"
log "initialization done"

# PID 1 stays, reaping whatever is orphaned to it, until QEMU is stopped.
trap '' HUP INT TERM
while :; do
    sleep 3600 &
    wait
done
