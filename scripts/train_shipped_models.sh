#!/usr/bin/env bash
# How models/net_tif.pth and models/net_jpg.pth were made (see models/README.md), and the figures
# of their model card. About 2 h on a 2-core CPU; data/ and runs/ take about 6 GB.
#     bash scripts/train_shipped_models.sh [OUT]      # OUT defaults to runs/shipped
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-runs/shipped}
data=$out/data
common=(--stride 16 --aug_times 0 --max_patches_per_image 100 --renders_per_image 24)

# 1. Uncompressed renders of the ten Train sources as they are; three epochs from scratch, the best
#    (lowest validation loss) kept.
python prepare_data.py --render --no-jitter --out_dir "$data/tif" "${common[@]}" --seed 1
python main_train.py --data_path "$data/tif" --out_dir "$out/tif" --batch_size 32 --epochs 3 --milestones 2 3 \
    --seed 1 --best_model_name net_tif.pth

# 2. Fresh renders from random variants of the sources (--jitter), uncompressed and JPEG (quality
#    75-98); both models continue from step 1's weights, two epochs each, side by side on one core each.
python prepare_data.py --render --out_dir "$data/jit_tif" "${common[@]}" --seed 5
python prepare_data.py --render --out_dir "$data/jit_jpg" "${common[@]}" --seed 2 --jpeg_quality 75 98
export OMP_NUM_THREADS=1
python main_train.py --data_path "$data/jit_tif" --out_dir "$out/jit_tif" --init_from "$out/tif/net_tif.pth" \
    --batch_size 32 --epochs 2 --milestones 1 2 --lr 3e-4 --seed 2 --best_model_name net_tif.pth --workers 1 &
python main_train.py --data_path "$data/jit_jpg" --out_dir "$out/jit_jpg" --init_from "$out/tif/net_tif.pth" \
    --batch_size 32 --epochs 2 --milestones 1 2 --lr 5e-4 --seed 3 --best_model_name net_jpg.pth --workers 1 &
wait
unset OMP_NUM_THREADS

# 3. The model card's figures: held-out sources (Test split), reference-class cameras, then cameras
#    outside the class and one exact camera, then the floor: what each model reads without sensor noise.
for class in quieter noisier "Canon EOS 5D Mark III"; do
    slug=$(echo "$class" | tr ' ' '_')
    python prepare_data.py --render --camera "$class" --out_dir "$data/eval_$slug" --renders_per_image 12 \
        --stride 64 --no-train --seed 3
done
for kind in tif jpg; do
    model=$out/jit_$kind/net_$kind.pth
    python evaluate.py --model_path "$model" --data "$data/jit_$kind/renders/Test" --out_dir "$out/eval_$kind"
done
for class in quieter noisier "Canon EOS 5D Mark III"; do
    slug=$(echo "$class" | tr ' ' '_')
    python evaluate.py --model_path "$out/jit_tif/net_tif.pth" --data "$data/eval_$slug/renders/Test" \
        --out_dir "$out/eval_tif_$slug"
done
python prepare_data.py --render --camera noiseless --out_dir "$data/eval_noiseless_tif" --renders_per_image 4 \
    --stride 64 --no-train --seed 3
python prepare_data.py --render --camera noiseless --out_dir "$data/eval_noiseless_jpg" --renders_per_image 4 \
    --stride 64 --no-train --seed 3 --jpeg_quality 75 98
for kind in tif jpg; do
    python evaluate.py --model_path "$out/jit_$kind/net_$kind.pth" --data "$data/eval_noiseless_$kind/renders/Test" \
        --out_dir "$out/eval_noiseless_$kind"
done
# 4. One exact camera: fine-tune net_tif on it alone and score it on that camera (not shipped).
python prepare_data.py --render --camera "Canon EOS 5D Mark III" --out_dir "$data/jit_5d3" "${common[@]}" \
    --renders_per_image 12 --seed 6
python main_train.py --data_path "$data/jit_5d3" --out_dir "$out/jit_5d3" --init_from "$out/jit_tif/net_tif.pth" \
    --batch_size 32 --epochs 2 --milestones 1 2 --lr 3e-4 --seed 4 --best_model_name net_5d3.pth
python evaluate.py --model_path "$out/jit_5d3/net_5d3.pth" --compare "$out/jit_tif/net_tif.pth" \
    --data "$data/eval_Canon_EOS_5D_Mark_III/renders/Test" --out_dir "$out/eval_5d3"
echo "models: $out/jit_tif/net_tif.pth $out/jit_jpg/net_jpg.pth (copy them to models/)"

# 5. net_jpg.pth as shipped now: step 2's net_jpg fine-tuned on camera-ISP JPEG renders plus the
#    real photos of the Train cameras, at most 30 patches a photo so that the (mostly low-ISO) real
#    photos do not outweigh the renders (REAL: a photo set from import_real_photos.py, see docs/data.md; its Test cameras are never trained on, nor validated on).
#        REAL=data/real bash scripts/train_shipped_models.sh
if [ -n "${REAL:-}" ]; then
    python prepare_data.py --render --isp --jpeg_quality 75 98 --renders_per_image 40 --out_dir "$data/isp_jpg" \
        --train --no-test --seed 1
    mix=$data/mix_jpg
    rm -rf "$mix"
    for split in Train Test; do
        for folder in "$data/isp_jpg/renders/$split"/*; do
            mkdir -p "$mix/$split/$(basename "$folder")"
            ln -s "$(realpath "$folder")"/* "$mix/$split/$(basename "$folder")/"
        done
    done
    for folder in "$REAL/Train"/*; do
        mkdir -p "$mix/Train/$(basename "$folder")"
        ln -s "$(realpath "$folder")"/* "$mix/Train/$(basename "$folder")/"
    done
    python prepare_data.py --data_path "$mix" --out_dir "$data/mix_jpg_h5" --pic_type all \
        --max_patches_per_image 30 --seed 3 || [ $? -eq 1 ]   # exit 1: a few files skipped, named
    python main_train.py --data_path "$data/mix_jpg_h5" --out_dir "$out/mix_jpg" --init_from "$out/jit_jpg/net_jpg.pth" \
        --batch_size 32 --epochs 3 --milestones 2 3 --lr 3e-4 --seed 8 --best_model_name net_jpg.pth --workers 1
    python evaluate.py --model_path "$out/mix_jpg/net_jpg.pth" --compare "$out/jit_jpg/net_jpg.pth" --data "$REAL" \
        --out_dir "$out/eval_real_jpg" || [ $? -eq 1 ]
    echo "net_jpg.pth (ISP renders + real photos): $out/mix_jpg/net_jpg.pth"
fi
