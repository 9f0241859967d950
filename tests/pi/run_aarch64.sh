#!/usr/bin/env bash
# Run `python3 ARGS...` as on a Raspberry Pi with Raspberry Pi OS 64-bit, under qemu user-mode emulation:
# the rootfs's python3.11 and the aarch64 wheels from .cache/pi (build them with tests/pi/make_rootfs.sh),
# the repository on PYTHONPATH, and the Pi's CPU model and /proc/cpuinfo.
#
#   PI_MODEL=4 (default, Cortex-A72) or 5 (Cortex-A76)
#   PI_QEMU_CPU  overrides the emulated CPU model, for experiments only (see below)
#   PI_CACHE_DIR as for make_rootfs.sh
#
# Relative paths and absolute paths that do not exist inside the rootfs resolve on the host, so the
# repository, test data and temporary files are used in place.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
CACHE=${PI_CACHE_DIR:-$REPO/.cache/pi}

die() {
    echo "run_aarch64.sh: $*" >&2
    exit 2
}

case ${PI_MODEL:-4} in
    4) cpu=cortex-a72 ;;
    5) cpu=cortex-a76 ;;
    *) die "PI_MODEL must be 4 or 5, not '${PI_MODEL}'" ;;
esac
prefix=$CACHE/prefix-pi${PI_MODEL:-4}
command -v qemu-aarch64-static >/dev/null || die "qemu-aarch64-static not found (apt-get install qemu-user-static)"
[[ -x $CACHE/rootfs/usr/bin/python3 && -f $CACHE/site/.pi-site && -f $prefix/proc/cpuinfo ]] \
    || die "no emulated Raspberry Pi userland in $CACHE; run 'make pi-rootfs' first"

# Never qemu's default CPU model "max": under it (qemu 7.2) XNNPACK's int8 kernels return wrong results.
export QEMU_CPU=${PI_QEMU_CPU:-$cpu}
export PYTHONPATH=$REPO:$CACHE/site
export PYTHONNOUSERSITE=1
unset PYTHONHOME
exec qemu-aarch64-static -L "$prefix" "$CACHE/rootfs/usr/bin/python3" "$@"
