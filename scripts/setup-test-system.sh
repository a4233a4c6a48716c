#!/usr/bin/env bash
# Install the system packages that only the test suite uses, when running as root with apt:
# chromium (headless screenshot of the report), slurm-wlm + munge (one-node SLURM cluster test),
# debootstrap (a private Apptainer root and a small image for the container test).
# Without root the corresponding tests skip and say why.
set -euo pipefail
want=()
[ -x /usr/bin/chromium ] || want+=(chromium)
command -v slurmctld >/dev/null 2>&1 || want+=(slurm-wlm)
command -v munged >/dev/null 2>&1 || [ -x /usr/sbin/munged ] || want+=(munge)
command -v apptainer >/dev/null 2>&1 || command -v debootstrap >/dev/null 2>&1 \
    || [ -x /usr/sbin/debootstrap ] || want+=(debootstrap)
[ "${#want[@]}" -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "setup-test-system: not root or no apt: ${want[*]} not installed; their tests will skip"
    exit 0
fi
echo "setup-test-system: installing ${want[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${want[@]}" >/dev/null
