#!/usr/bin/env bash
# net_jpg.pth and net_tif.pth retrained on one CUDA GPU from many more camera-ISP renders than a
# 2-core CPU can use: the bundled photos plus the 23 wallpaper photos of
# scripts/fetch_clean_photos.sh, each rendered RENDERS times per ISO (a random camera, ISP and,
# for net_jpg, JPEG quality each time), one rendering process per ISO and kind. net_jpg also
# trains on the real photos of the Train cameras of REAL (a photo set from import_real_photos.py;
# its Test cameras are never used), each photo linked REAL_COPIES times so that the copies give
# other random patches and the real photos keep a share of the set near the CPU recipe's
# (scripts/train_shipped_models.sh step 5). Both models start from the shipped ones and train side
# by side on the one GPU.
#     REAL=data/real bash scripts/train_gpu.sh          # OUT_DIR=runs/gpu RENDERS=20 EPOCHS=8 LR=3e-4
# TRAIN_SECONDS bounds each training run (the best epoch so far is kept); 0, the default, does not.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${OUT_DIR:-runs/gpu}
renders=${RENDERS:-20}
epochs=${EPOCHS:-8}
lr=${LR:-3e-4}
real=${REAL:-}
real_copies=${REAL_COPIES:-4}
train_seconds=${TRAIN_SECONDS:-0}
clean=(bundled .cache/clean_photos)
isos=(100 200 400 800 1600 3200 6400)

bash scripts/fetch_noise_profiles.sh
bash scripts/fetch_clean_photos.sh

mkdir -p "$out/logs"

# 1. Renders: ISP on for both kinds, JPEG (quality 75-98) for net_jpg, PNG for net_tif.
pids=()
seed=100
for kind in jpg tif; do
    jpeg=()
    [ "$kind" = jpg ] && jpeg=(--jpeg_quality 75 98)
    for iso in "${isos[@]}"; do
        seed=$((seed + 1))
        python prepare_data.py --render --no-train --no-test --isp --clean_dir "${clean[@]}" --isos "$iso" \
            --renders_per_image "$renders" --data_path "$out/renders_$kind/$iso" "${jpeg[@]}" --seed "$seed" \
            >"$out/logs/render_${kind}_$iso.log" 2>&1 &
        pids+=($!)
    done
done
for pid in "${pids[@]}"; do wait "$pid"; done

# 2. One photo set per kind: the renders of every ISO (and for net_jpg the real Train photos),
#    linked file by file into DIR/{Train,Test}/<ISO>/.
link_files() {  # link_files DEST_SPLIT SRC_SPLIT...: DEST_SPLIT/<ISO>/* -> SRC_SPLIT/<ISO>/*
    local dest=$1 src iso_dir
    shift
    for src in "$@"; do
        for iso_dir in "$src"/*/; do
            mkdir -p "$dest/$(basename "$iso_dir")"
            ln -s "$(realpath "$iso_dir")"/* "$dest/$(basename "$iso_dir")/"
        done
    done
}
for kind in jpg tif; do
    rm -rf "$out/photos_$kind"
    for split in Train Test; do
        link_files "$out/photos_$kind/$split" "$out/renders_$kind"/*/"$split"
    done
done
if [ -n "$real" ]; then
    for photo in "$real"/Train/*/*; do
        iso_dir=$out/photos_jpg/Train/$(basename "$(dirname "$photo")")
        mkdir -p "$iso_dir"
        for k in $(seq "$real_copies"); do
            ln -s "$(realpath "$photo")" "$iso_dir/real${k}_$(basename "$photo")"
        done
    done
fi

# 3. Patch sets: at most 40 patches a photo, every 16 pixels.
for kind in jpg tif; do
    python prepare_data.py --data_path "$out/photos_$kind" --out_dir "$out/h5_$kind" --pic_type all --stride 16 \
        --aug_times 0 --max_patches_per_image 40 --seed 3 || [ $? -eq 1 ]   # exit 1: a few files skipped, named
done

# 4. Both models side by side, from the shipped weights; the lr drops 10x for the last third.
drop=$((epochs * 2 / 3 > 0 ? epochs * 2 / 3 : 1))
pids=()
for kind in jpg tif; do
    timeout "$train_seconds" python main_train.py --data_path "$out/h5_$kind" --out_dir "$out/train_$kind" \
        --init_from "models/net_$kind.pth" --batch_size 256 --lr "$lr" --epochs "$epochs" --milestones "$drop" "$epochs" \
        --seed 8 --workers 6 --best_model_name "net_$kind.pth" >"$out/logs/train_$kind.log" 2>&1 &
    pids+=($!)
done
status=0
for pid in "${pids[@]}"; do wait "$pid" || status=$?; done
echo "models: $out/train_jpg/net_jpg.pth $out/train_tif/net_tif.pth (training exit status $status; 124: stopped at TRAIN_SECONDS)"
