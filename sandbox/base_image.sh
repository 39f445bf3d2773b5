#!/usr/bin/env bash
# A local stand-in for Docker Hub's python:3.11-slim-bookworm, for machines that cannot pull it (an
# offline CI box, a network that only reaches package registries). Not used where the real base can be
# pulled: `make image` uses whatever `python:3.11-slim-bookworm` the Docker daemon has.
#
# A Debian bookworm minimal root from the same mirror apt uses, with python3, pip and venv; `python`
# and `pip` on PATH as in the official image, no EXTERNALLY-MANAGED marker (the official image has none),
# and the host's locally added CA certificates (a network that re-signs TLS must be trusted by pip).
#
# Usage: sudo bash sandbox/base_image.sh [TAG]   (needs debootstrap and a running Docker daemon)
set -euo pipefail

tag="${1:-python:3.11-slim-bookworm}"
mirror="$(sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -n 1)"
mirror="${mirror:-http://deb.debian.org/debian}"
root="$(mktemp -d /tmp/base-image.XXXXXX)"
trap 'rm -rf "$root"' EXIT

debootstrap --variant=minbase --include=python3,python3-pip,python3-venv,python-is-python3,ca-certificates \
    bookworm "$root" "$mirror"
rm -f "$root"/usr/lib/python3*/EXTERNALLY-MANAGED
if compgen -G "/usr/local/share/ca-certificates/*.crt" > /dev/null; then
    cp /usr/local/share/ca-certificates/*.crt "$root/usr/local/share/ca-certificates/"
    chroot "$root" update-ca-certificates > /dev/null
fi
chroot "$root" apt-get clean
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin
tar -C "$root" -c . | docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["python3"]' - "$tag"
echo "imported $tag"
