#!/usr/bin/env bash
# Set-up step: put darktable's sensor noise database at .cache/noiseprofiles.json (or at $1).
# The file comes from Debian's darktable package, downloaded (not installed) with apt-get;
# it is never committed. Re-running is a no-op once the file is there.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dest="${1:-$repo/.cache/noiseprofiles.json}"
member="./usr/share/darktable/noiseprofiles.json"

fail() { echo "fetch_noise_profiles: $*" >&2; exit 1; }
# shellcheck source=scripts/apt_download.sh
source "$repo/scripts/apt_download.sh"

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
    tmp="$(mktemp -d)"
    apt_download "$tmp" darktable
    deb=("$tmp"/darktable_*.deb)
    dpkg-deb --fsys-tarfile "${deb[0]}" | tar -xO "$member" >"$part" 2>/dev/null \
        || fail "${deb[0]##*/} has no $member"
fi
is_profiles "$part" || fail "$dest: the extracted file is not a darktable noise profile database"
mv "$part" "$dest"
echo "$dest: written ($(wc -c <"$dest") bytes)"
