#!/usr/bin/env bash
# Set-up step: more clean sources for the renderer, from Debian's wallpaper packages, at
# .cache/clean_photos/ (or at $1). Render from them beside the bundled photos with
#     python prepare_data.py --render --clean_dir bundled .cache/clean_photos ...
# The packages are downloaded (not installed) with apt-get; nothing is committed. Of their ~130
# images only the 23 photographs listed below are kept (the rest are drawings, renders and
# gradients, which teach the network nothing about photo content), one size of each, area-downscaled
# to at most 1600 pixels on the long side. They are JPEGs already; they are written as JPEG quality
# 98 with full-resolution chroma, which after that downscaling changes a pixel by under a level.
# Re-running is a no-op once every photo is there.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dest="${1:-$repo/.cache/clean_photos}"
max_side=1600

fail() { echo "fetch_clean_photos: $*" >&2; exit 1; }
# shellcheck source=scripts/apt_download.sh
source "$repo/scripts/apt_download.sh"

# name  package  path inside the package (under usr/share/)
photos="
mate-Aqua             mate-backgrounds             backgrounds/mate/nature/Aqua.jpg
mate-Blinds           mate-backgrounds             backgrounds/mate/nature/Blinds.jpg
mate-Dune             mate-backgrounds             backgrounds/mate/nature/Dune.jpg
mate-FreshFlower      mate-backgrounds             backgrounds/mate/nature/FreshFlower.jpg
mate-Garden           mate-backgrounds             backgrounds/mate/nature/Garden.jpg
mate-GreenMeadow      mate-backgrounds             backgrounds/mate/nature/GreenMeadow.jpg
mate-LadyBird         mate-backgrounds             backgrounds/mate/nature/LadyBird.jpg
mate-RainDrops        mate-backgrounds             backgrounds/mate/nature/RainDrops.jpg
mate-Storm            mate-backgrounds             backgrounds/mate/nature/Storm.jpg
mate-TwoWings         mate-backgrounds             backgrounds/mate/nature/TwoWings.jpg
mate-Wood             mate-backgrounds             backgrounds/mate/nature/Wood.jpg
mate-YellowFlower     mate-backgrounds             backgrounds/mate/nature/YellowFlower.jpg
plasma-BytheWater     plasma-workspace-wallpapers  wallpapers/BytheWater/contents/images/2560x1600.jpg
plasma-ColdRipple     plasma-workspace-wallpapers  wallpapers/ColdRipple/contents/images/2560x1600.jpg
plasma-ColorfulCups   plasma-workspace-wallpapers  wallpapers/ColorfulCups/contents/images/2560x1600.jpg
plasma-DarkestHour    plasma-workspace-wallpapers  wallpapers/DarkestHour/contents/images/2560x1600.jpg
plasma-EveningGlow    plasma-workspace-wallpapers  wallpapers/EveningGlow/contents/images/2560x1600.jpg
plasma-FallenLeaf     plasma-workspace-wallpapers  wallpapers/FallenLeaf/contents/images/2560x1600.jpg
plasma-Grey           plasma-workspace-wallpapers  wallpapers/Grey/contents/images/2560x1600.jpg
plasma-Kite           plasma-workspace-wallpapers  wallpapers/Kite/contents/images/2560x1600.jpg
plasma-OneStandsOut   plasma-workspace-wallpapers  wallpapers/OneStandsOut/contents/images/2560x1600.jpg
plasma-Path           plasma-workspace-wallpapers  wallpapers/Path/contents/images/2560x1600.jpg
plasma-summer_1am     plasma-workspace-wallpapers  wallpapers/summer_1am/contents/images/2560x1600.jpg
"
# gnome-backgrounds and ukui-wallpapers are looked through too: in Debian 12 neither holds a photograph.

missing=$(echo "$photos" | awk 'NF {print $1}' | while read -r name; do [[ -s "$dest/$name.jpg" ]] || echo "$name"; done)
if [[ -z "$missing" ]]; then
    echo "$dest: already present ($(echo "$photos" | awk 'NF' | wc -l) photos)"
    exit 0
fi
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
packages=$(echo "$photos" | awk 'NF {print $2}' | sort -u)
# shellcheck disable=SC2086
apt_download "$tmp" $packages
for package in $packages; do
    deb=("$tmp/${package}"_*.deb)
    dpkg-deb -x "${deb[0]}" "$tmp/$package" || fail "${deb[0]##*/}: not a readable package"
    echo "${deb[0]##*/}" >>"$tmp/versions"
done

mkdir -p "$dest"
echo "$photos" | awk 'NF' | MAX_SIDE=$max_side DEST="$dest" TMP="$tmp" python3 -c '
import os, sys
import cv2
for line in sys.stdin:
    name, package, path = line.split()
    src = os.path.join(os.environ["TMP"], package, "usr/share", path)
    img = cv2.imread(src, cv2.IMREAD_COLOR)
    if img is None:
        sys.exit(f"fetch_clean_photos: {package} has no readable {path}")
    h, w = img.shape[:2]
    scale = min(1.0, int(os.environ["MAX_SIDE"]) / max(h, w))
    if scale < 1.0:
        img = cv2.resize(img, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
    out = os.path.join(os.environ["DEST"], name + ".jpg")
    part = out + ".part.jpg"
    params = [cv2.IMWRITE_JPEG_QUALITY, 98, cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444]
    if not cv2.imwrite(part, img, params):
        sys.exit(f"fetch_clean_photos: could not write {out}")
    os.replace(part, out)
' || fail "converting the photos failed"
cp "$tmp/versions" "$dest/PACKAGES.txt"
echo "$dest: written ($(ls "$dest"/*.jpg | wc -l) photos from $(tr '\n' ' ' <"$tmp/versions"))"
