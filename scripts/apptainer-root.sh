#!/usr/bin/env bash
# Provide Apptainer 1.4 where the OS has none (Debian 12): a private Debian unstable root made
# with debootstrap, entered with unshare -m + pivot_root (apptainer refuses a plain chroot).
#   apptainer-root.sh provision              make the root once (about 1-2 minutes)
#   apptainer-root.sh exec [-b DIR]... CMD   run CMD inside it; DIR (and the current folder)
#                                            are bound at the same paths
# The root lives outside every folder bound into it: PYSIM_APPTAINER_ROOT, default
# /var/lib/pysim-apptainer-root (root) or ~/.cache/pysim/apptainer-root. Needs root (or a
# user namespace with CAP_SYS_ADMIN); on a machine with Apptainer installed, use that instead.
set -euo pipefail

ROOT="${PYSIM_APPTAINER_ROOT:-}"
if [ -z "$ROOT" ]; then
    if [ "$(id -u)" = 0 ]; then ROOT=/var/lib/pysim-apptainer-root
    else ROOT="$HOME/.cache/pysim/apptainer-root"; fi
fi
MIRROR="${PYSIM_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
APT_OPTS=(-o Acquire::Check-Valid-Until=false -o Dpkg::Use-Pty=0 -q -y)

die() { echo "apptainer-root: $*" >&2; exit 2; }

provision() {
    [ -f "$ROOT/.complete" ] && return 0
    [ "$(id -u)" = 0 ] || die "provisioning needs root (debootstrap); run as root or install apptainer"
    command -v debootstrap >/dev/null 2>&1 || {
        command -v apt-get >/dev/null 2>&1 || die "debootstrap missing and no apt-get to install it"
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap
    }
    local tmp="$ROOT.partial"
    rm -rf "$tmp"
    mkdir -p "$(dirname "$ROOT")"
    echo "apptainer-root: debootstrap sid into $tmp" >&2
    debootstrap --variant=minbase sid "$tmp" "$MIRROR" >&2
    cp /etc/resolv.conf "$tmp/etc/resolv.conf" 2>/dev/null || true
    # apt inside the new root; a private mount namespace so /proc does not leak out.
    unshare -m --propagation private bash -c '
        set -e; mount -t proc proc "$1/proc"
        chroot "$1" env DEBIAN_FRONTEND=noninteractive apt-get "${@:2}" update
        chroot "$1" env DEBIAN_FRONTEND=noninteractive apt-get "${@:2}" install \
            --no-install-recommends apptainer squashfuse fuse2fs debootstrap ca-certificates \
            squashfs-tools uidmap
        chroot "$1" apt-get clean' _ "$tmp" "${APT_OPTS[@]}" >&2
    # Sub-id ranges for `build --fakeroot` and `exec --userns` as root.
    for f in subuid subgid; do
        grep -q '^root:' "$tmp/etc/$f" 2>/dev/null || echo "root:200000:65536" >> "$tmp/etc/$f"
    done
    mkdir -p "$tmp/oldroot"
    touch "$tmp/.complete"
    mv "$tmp" "$ROOT"
    echo "apptainer-root: ready: $(enter apptainer --version)" >&2
}

# enter [-b DIR]... CMD...: run CMD inside the root with DIR... and $PWD bound at their paths.
enter() {
    [ -f "$ROOT/.complete" ] || die "no root at $ROOT (run: $0 provision)"
    local binds=("$PWD")
    while [ "${1:-}" = "-b" ]; do binds+=("$2"); shift 2; done
    [ $# -gt 0 ] || die "no command given"
    for d in /etc/resolv.conf /etc/hosts /etc/ssl/certs /usr/local/share/ca-certificates; do
        [ -e "$d" ] && binds+=("$d")
    done
    PYSIM_AR_ROOT="$ROOT" PYSIM_AR_CWD="$PWD" unshare -m --propagation private bash -c '
        set -e; root="$PYSIM_AR_ROOT"; n="$1"; shift
        mount --bind "$root" "$root"
        mount --rbind /dev "$root/dev"
        mount --rbind /sys "$root/sys"
        for ((i = 0; i < n; i++)); do
            src="$1"; shift
            case "$src" in "$root"|"$root"/*) echo "apptainer-root: will not bind $src (inside the root)" >&2; exit 2;; esac
            [ -e "$src" ] && [ "$src" != / ] || continue
            if [ -d "$src" ]; then mkdir -p "$root$src"
            else mkdir -p "$(dirname "$root$src")"; [ -e "$root$src" ] || : > "$root$src"; fi
            mount --rbind "$src" "$root$src"
        done
        cd "$root"; pivot_root . oldroot
        mount -t proc proc /proc
        umount -l /oldroot
        cd "$PYSIM_AR_CWD"
        unset PYSIM_AR_ROOT PYSIM_AR_CWD
        exec "$@"' _ "${#binds[@]}" "${binds[@]}" "$@"
}

case "${1:-}" in
    provision) provision ;;
    exec) shift; enter "$@" ;;
    path) echo "$ROOT" ;;
    *) echo "usage: $0 provision | exec [-b DIR]... CMD... | path" >&2; exit 2 ;;
esac
