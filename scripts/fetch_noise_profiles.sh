#!/usr/bin/env bash
# Set-up step: put darktable's sensor noise database at .cache/noiseprofiles.json (or at $1).
# The file comes from Debian's darktable package, downloaded (not installed) with apt-get;
# it is never committed. Re-running is a no-op once the file is there.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dest="${1:-$repo/.cache/noiseprofiles.json}"
member="./usr/share/darktable/noiseprofiles.json"

fail() { echo "fetch_noise_profiles: $*" >&2; exit 1; }

is_profiles() {
    python3 -c 'import json, sys; assert json.load(open(sys.argv[1]))["noiseprofiles"]' "$1" 2>/dev/null
}

if [[ -s "$dest" ]] && is_profiles "$dest"; then
    echo "$dest: already present"
    exit 0
fi
mkdir -p "$(dirname "$dest")"
part="$dest.part.$$"
trap 'rm -f "$part"; [[ -n "${tmp:-}" ]] && rm -rf "$tmp"' EXIT

if [[ -s "/${member#./}" ]]; then
    # darktable is installed: no download needed.
    cp "/${member#./}" "$part"
else
    command -v apt-get >/dev/null && command -v dpkg-deb >/dev/null \
        || fail "needs apt-get and dpkg-deb (Debian/Ubuntu) to get darktable's noiseprofiles.json"
    tmp="$(mktemp -d)"
    chmod 755 "$tmp"  # apt's unprivileged _apt user downloads into it
    # A fresh machine has no package lists yet; as root, fetch them once and retry.
    if ! (cd "$tmp" && apt-get download -q darktable >"$tmp/apt.log" 2>&1); then
        [[ $EUID -eq 0 ]] || fail "apt-get download darktable failed: $(tail -n1 "$tmp/apt.log") (run 'apt-get update' as root first)"
        apt-get update -q >"$tmp/apt.log" 2>&1 || fail "apt-get update failed: $(tail -n1 "$tmp/apt.log")"
        (cd "$tmp" && apt-get download -q darktable >"$tmp/apt.log" 2>&1) \
            || fail "apt-get download darktable failed: $(tail -n1 "$tmp/apt.log")"
    fi
    deb=("$tmp"/darktable_*.deb)
    dpkg-deb --fsys-tarfile "${deb[0]}" | tar -xO "$member" >"$part" 2>/dev/null \
        || fail "${deb[0]##*/} has no $member"
fi
is_profiles "$part" || fail "$dest: the extracted file is not a darktable noise profile database"
mv "$part" "$dest"
echo "$dest: written ($(wc -c <"$dest") bytes)"
