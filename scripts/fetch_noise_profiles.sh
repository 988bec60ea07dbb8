#!/usr/bin/env bash
# Set-up step: put darktable's sensor noise database at .cache/noiseprofiles.json (or at $1).
# The file comes from Debian's darktable package, downloaded (not installed) with apt-get; where
# there is no apt-get (macOS, Fedora, ...), the same package is downloaded from Debian's archive at
# a pinned version, checked against its SHA-256 and unpacked by Python. It is never committed.
# Re-running is a no-op once the file is there.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dest="${1:-$repo/.cache/noiseprofiles.json}"
member="./usr/share/darktable/noiseprofiles.json"
# The package apt-get gets on Debian 12; the file inside does not depend on the architecture.
deb_url="${DARKTABLE_DEB_URL:-http://deb.debian.org/debian/pool/main/d/darktable/darktable_4.2.1-4_amd64.deb}"
deb_sha256="${DARKTABLE_DEB_SHA256:-68f31b90862a6be7c53d3df52aa32747ca22aeb75396ea3e944bd9317327ca76}"

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
elif command -v apt-get >/dev/null && command -v dpkg-deb >/dev/null; then
    tmp="$(mktemp -d)"
    apt_download "$tmp" darktable
    deb=("$tmp"/darktable_*.deb)
    dpkg-deb --fsys-tarfile "${deb[0]}" | tar -xO "$member" >"$part" 2>/dev/null \
        || fail "${deb[0]##*/} has no $member"
else
    python3 - "$deb_url" "$deb_sha256" "$member" "$part" "$dest" <<'PY' || exit 1
import hashlib, io, sys, tarfile, urllib.request

url, sha256, member, out, dest = sys.argv[1:]


def fail(reason: str):
    sys.exit(f"fetch_noise_profiles: no apt-get, and {url}: {reason}; install darktable, "
             f"or put its noiseprofiles.json at {dest}")


try:
    data = urllib.request.urlopen(url, timeout=120).read()
except OSError as e:
    fail(str(e))
if hashlib.sha256(data).hexdigest() != sha256:
    fail(f"SHA-256 is not the pinned {sha256}")
# A .deb is an ar archive: 8-byte magic, then members with 60-byte headers, sizes at bytes 48-58.
pos = 8
while pos + 60 <= len(data):
    name, size = data[pos:pos + 16].strip().decode(), int(data[pos + 48:pos + 58])
    if name.startswith("data.tar"):
        with tarfile.open(fileobj=io.BytesIO(data[pos + 60:pos + 60 + size])) as tar:
            with open(out, "wb") as f:
                f.write(tar.extractfile(member).read())
        sys.exit(0)
    pos += 60 + size + size % 2
fail("not a Debian package with a data.tar member")
PY
fi
is_profiles "$part" || fail "$dest: the extracted file is not a darktable noise profile database"
mv "$part" "$dest"
echo "$dest: written ($(wc -c <"$dest") bytes)"
