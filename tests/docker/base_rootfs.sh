#!/bin/bash
# Builds the base image's root filesystem as a tarball, for machines that
# cannot pull debian:bookworm-slim from Docker Hub:
#   debootstrap --variant=minbase bookworm, from the mirror this machine's apt
#   uses (tests/docker/apt_mirror.py reads /etc/apt: no host is written here),
#   then this machine's apt sources and configuration copied in, so that
#   `apt-get install` in the Dockerfile reaches the same mirror.
# Usage: base_rootfs.sh OUT.tar   (root; skips the work when OUT.tar exists)
# The caller `docker import`s it as debian:bookworm-slim; the Dockerfile stays
# the standard one.
set -euo pipefail
out=$1
[ -s "$out" ] && { echo "base rootfs: reusing $out"; exit 0; }
here=$(cd "$(dirname "$0")" && pwd)
mirror=$(/usr/bin/python3 "$here/apt_mirror.py" bookworm)
work=$(mktemp -d "${out%/*}/rootfs.XXXXXX")
trap 'rm -rf --one-file-system "$work"' EXIT
echo "base rootfs: debootstrap --variant=minbase bookworm from $mirror"
debootstrap --variant=minbase --components=main bookworm "$work/root" "$mirror" \
  >"$work/debootstrap.log" 2>&1 || { tail -30 "$work/debootstrap.log"; exit 1; }

# The machine's apt configuration: enabled sources and their keys, options
# (e.g. a snapshot's Check-Valid-Until). Credentials (auth.conf*) stay out.
rm -f "$work/root/etc/apt/sources.list"
mkdir -p "$work/root/etc/apt/sources.list.d" "$work/root/etc/apt/apt.conf.d" \
         "$work/root/etc/apt/trusted.gpg.d" "$work/root/etc/apt/keyrings"
[ -f /etc/apt/sources.list ] && cp /etc/apt/sources.list "$work/root/etc/apt/"
for f in /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
  [ -f "$f" ] || continue
  # Only the files naming the Debian mirror: the base system has no keys for others.
  if grep -qF "$mirror" "$f"; then cp "$f" "$work/root/etc/apt/sources.list.d/"; fi
done
cp -a /etc/apt/apt.conf.d/. "$work/root/etc/apt/apt.conf.d/"
cp -a /etc/apt/trusted.gpg.d/. "$work/root/etc/apt/trusted.gpg.d/" 2>/dev/null || true
cp -a /etc/apt/keyrings/. "$work/root/etc/apt/keyrings/" 2>/dev/null || true
# Slim like the official image: no package lists, no apt cache, no docs.
rm -rf "$work/root/var/lib/apt/lists/"* "$work/root/var/cache/apt/"*.bin \
       "$work/root/var/cache/apt/archives/"*.deb "$work/root/usr/share/doc/"* \
       "$work/root/usr/share/man/"* "$work/root/usr/share/info/"*
tar -C "$work/root" --numeric-owner -cf "$out.tmp" .
mv "$out.tmp" "$out"
echo "base rootfs: $(du -h "$out" | cut -f1) in $out"
