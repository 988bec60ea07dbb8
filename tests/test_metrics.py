"""Scoring functions against figures computed by hand."""
import warnings

import cv2
import numpy as np
import pytest

import camera_noise as cn
import forgeries
import isonet
import metrics
import reports


def test_accuracy_of_a_known_set():
    true = np.array([0.0, 1.0, 2.0, 3.0])
    est = np.array([0.5, 0.5, 3.0, 3.0])  # errors +0.5, -0.5, +1, 0
    figures = metrics.accuracy(est, true)
    assert figures["n"] == 4
    assert figures["mae"] == pytest.approx(0.5)
    assert figures["bias"] == pytest.approx(0.25)
    assert figures["rmse"] == pytest.approx(np.sqrt((0.25 + 0.25 + 1) / 4))
    assert figures["within_half_stop"] == pytest.approx(0.75)
    assert figures["within_one_stop"] == pytest.approx(1.0)
    # ranks of est: 1.5, 1.5, 3.5, 3.5 against 1, 2, 3, 4
    assert figures["spearman"] == pytest.approx(0.8944, abs=1e-4)


def test_accuracy_of_a_model_that_reads_every_image_the_same_ranks_nothing_without_a_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # scipy warns on a constant input
        figures = metrics.accuracy(np.full(4, 0.055), np.array([0.0, 1.0, 2.0, 3.0]))
    assert np.isnan(figures["spearman"])
    assert figures["mae"] == pytest.approx((0.055 + 0.945 + 1.945 + 2.945) / 4)


def test_per_iso_table_and_confusion():
    true_iso = np.array([100, 100, 800, 800, 800])
    est = np.array([0.2, -0.2, 3.0, 4.0, 2.6])
    rows = metrics.per_iso_table(est, true_iso)
    assert [r["iso"] for r in rows] == [100, 800]
    assert rows[0]["mae"] == pytest.approx(0.2) and rows[0]["bias"] == pytest.approx(0.0)
    assert rows[1]["n"] == 3 and rows[1]["mae"] == pytest.approx(1.4 / 3)
    assert rows[1]["median_estimate_iso"] == pytest.approx(800)
    stops, counts = metrics.confusion_of_full_stops(est, true_iso)
    assert stops == [100, 800, 1600]
    np.testing.assert_array_equal(counts, [[2, 0, 0], [0, 2, 1], [0, 0, 0]])


def test_calibration_is_monotone_and_undoes_a_monotone_distortion(tmp_path):
    true = np.repeat(np.arange(0, 7), 5).astype(float)
    est = 0.5 * true + 1 + np.tile([-0.1, -0.05, 0, 0.05, 0.1], 7)  # a camera the net reads wrongly
    calibration = metrics.fit_calibration(est, true)
    assert np.all(np.diff(calibration.y) >= 0)
    assert np.abs(calibration(est) - true).mean() < 0.15
    assert calibration(-10.0) == calibration.y[0] and calibration(10.0) == calibration.y[-1]
    reports.write_json(tmp_path / "cal.json", calibration.to_json())
    again = metrics.Calibration.load(tmp_path / "cal.json")
    np.testing.assert_allclose(again(est), calibration(est))
    held_out = metrics.cross_validated_calibration(est, true, folds=5)
    assert np.abs(held_out - true).mean() < 0.5 < np.abs(est - true).mean()


def test_bad_calibration_file_is_one_line(tmp_path):
    (tmp_path / "cal.json").write_text('{"estimated_metric": [1, 0], "true_metric": [0, 1]}')
    with pytest.raises(isonet.ISONetError, match=r"cal\.json: not a calibration file"):
        metrics.Calibration.load(tmp_path / "cal.json")


def test_pixel_auc_and_f1_by_hand():
    truth = np.array([1, 1, 0, 0, 0], bool)
    assert metrics.pixel_auc(np.array([5, 4, 3, 2, 1]), truth) == 1.0
    assert metrics.pixel_auc(np.array([1, 2, 3, 4, 5]), truth) == 0.0
    # positive scores 3 and 1 against negatives 2, 2, 0: pairs won 3 + 1 of 6
    assert metrics.pixel_auc(np.array([3, 1, 2, 2, 0]), truth) == pytest.approx(4 / 6)
    # threshold >= 3: tp 1, predicted 1 -> F1 2/3; >= 2: tp 1, predicted 3 -> 0.4; >= 1: tp 2 of 4 -> 2/3
    assert metrics.best_f1(np.array([3, 1, 2, 2, 0]), truth) == pytest.approx(2 / 3)


def test_map_to_pixels_takes_the_nearest_patch_centre():
    values = np.array([[0.0, 1.0], [2.0, 3.0]])
    pixels = metrics.map_to_pixels(values, 64, (128, 128))
    assert pixels.shape == (128, 128)
    assert pixels[10, 10] == 0 and pixels[10, 100] == 1 and pixels[100, 10] == 2 and pixels[127, 127] == 3
    dense = metrics.map_to_pixels(np.arange(3.0)[None, :], 16, (64, 96))
    # patch centres at 32, 48, 64: pixel 40 lies nearer 48
    assert dense[0, 40] == 1 and dense[0, 39] == 0 and dense[0, 95] == 2


def test_noise_sigma_map_finds_the_noisier_region():
    """The classical baseline: a patch's Immerkaer sigma, on the map's grid, ranks the noisier
    pasted region above the rest (and matches the per-patch computation)."""
    import camera_noise

    rng = np.random.default_rng(0)
    img = np.clip(120 + rng.normal(0, 2, (256, 320, 3)), 0, 255).astype(np.uint8)
    mask = np.zeros((256, 320), bool)
    mask[64:192, 128:256] = True
    img[mask] = np.clip(120 + rng.normal(0, 8, (mask.sum(), 3)), 0, 255).astype(np.uint8)
    values = metrics.noise_sigma_map(img, 32)
    assert values.shape == isonet.grid_shape(256, 320, 32)
    # The patch at (64, 128) with its one-pixel ring: Immerkaer's mask answers on the 64x64 inside.
    around = img[63:129, 127:193].astype(np.float32) @ cn.LUMA_WEIGHTS
    assert 2 ** values[2, 4] == pytest.approx(camera_noise.immerkaer_sigma(around), rel=1e-4)
    assert metrics.splice_quality(metrics.splice_scores(values), 32, mask)["auc"] > 0.9


def test_fused_splice_scores_weigh_two_maps_of_different_spreads_alike():
    # Two maps see the pasted region through independent noise, one in stops, one 100x smaller
    # (a log sigma could be any scale): the plain sum would be the first map alone, the fused
    # scores are better than either.
    rng = np.random.default_rng(0)
    mask = np.zeros((20, 20), bool)
    mask[5:12, 6:14] = True
    model = 1.0 * mask + rng.normal(0, 1.0, mask.shape)
    sigma = 0.01 * mask + rng.normal(0, 0.01, mask.shape)
    auc = lambda scores: metrics.pixel_auc(scores, mask)  # noqa: E731
    alone = max(auc(metrics.splice_scores(model)), auc(metrics.splice_scores(sigma)))
    assert auc(metrics.splice_scores(model) + metrics.splice_scores(sigma)) < alone + 0.01
    assert auc(metrics.fused_splice_scores(model, sigma)) > alone + 0.03
    # A model reading most clean patches at its lowest output, and half the pasted ones above it:
    # scaled by its patches off that floor, it adds to the sigma's evidence instead of drowning it.
    off_floor = rng.uniform(size=mask.shape) < np.where(mask, 0.5, 0.3)
    floored = np.where(off_floor, np.where(mask, 1.0, 0.0) + rng.uniform(0.01, 0.5, mask.shape), 0.0)
    scores = metrics.robust_splice_scores(floored)
    assert np.median(scores[floored != 0]) == pytest.approx(1.0)
    fused = auc(metrics.fused_splice_scores(floored, sigma))
    assert fused > max(auc(metrics.splice_scores(floored)), auc(metrics.splice_scores(sigma))) + 0.03
    assert not metrics.robust_splice_scores(np.zeros((4, 4))).any()


def test_flat_noise_statistics_read_white_noise_at_every_scale():
    rng = np.random.default_rng(1)
    y, x = np.mgrid[0:256, 0:256]
    scene = np.stack([60 + 0.3 * x, 90 + 0.2 * y, 100 + 0.1 * (x + y)], axis=2)
    noisy = np.clip(scene + rng.normal(0, 4, scene.shape), 0, 255).astype(np.uint8)
    stats = metrics.flat_noise_statistics(noisy)
    luma_sigma = 4 * np.sqrt((cn.LUMA_WEIGHTS ** 2).sum())
    assert stats["sigma_1x"] == pytest.approx(luma_sigma, rel=0.15)
    assert stats["sigma_2x"] == pytest.approx(luma_sigma / 2, rel=0.2)  # white noise halves per 2x2 average
    assert stats["sigma_4x"] == pytest.approx(luma_sigma / 4, rel=0.25)
    clipped = np.zeros_like(noisy)
    assert np.isnan(metrics.flat_noise_statistics(clipped)["sigma_1x"])  # black: no noise to read


def test_real_splices_pair_photos_of_one_camera_and_size(tmp_path):
    rng = np.random.default_rng(2)
    photos = []
    for k, (iso, camera) in enumerate([(100, "A"), (400, "A"), (800, "A"), (100, "B"), (1600, "B")]):
        path = tmp_path / f"{k}.png"
        size = (128, 128) if camera == "A" else (128, 160)
        assert cv2.imwrite(str(path), np.full(size + (3,), 40 * k, np.uint8))
        photos.append((path, iso, camera))
    (tmp_path / "broken.png").write_bytes(b"\x89PNG broken")
    splices, unreadable = forgeries.real_splices(photos + [(tmp_path / "broken.png", 200, "A")], 12, rng)
    assert all("broken.png" in reason for reason in unreadable)
    assert len(splices) == 12 and {s.gap for s in splices} == {1, 2, 3, 4}
    for s in splices:
        values = set(np.unique(s.image[s.mask])) | set(np.unique(s.image[~s.mask]))
        assert len(np.unique(s.image[s.mask])) == 1 and len(np.unique(s.image[~s.mask])) == 1
        inside, outside = s.image[s.mask][0, 0] // 40, s.image[~s.mask][0, 0] // 40
        assert photos[inside][2] == photos[outside][2] == s.camera and inside != outside and len(values) == 2
    with pytest.raises(isonet.ISONetError, match="1-4 stops"):
        forgeries.real_splices([photos[0], photos[3]], 1, rng)


def test_calibration_names_its_model_by_the_weights(random_net, tmp_path):
    calibration = metrics.fit_calibration(np.array([0.0, 1.0, 2.0]), np.array([0.5, 1.0, 2.5]),
                                             isonet.weights_fingerprint(random_net))
    reports.write_json(tmp_path / "cal.json", calibration.to_json())
    loaded = metrics.Calibration.load(tmp_path / "cal.json")
    loaded.check_model(random_net, tmp_path / "cal.json")  # the same weights: accepted
    other = isonet.ISONet()
    other.load_state_dict(random_net.state_dict())
    other.fc3.bias.data += 1e-3
    with pytest.raises(isonet.ISONetError, match="another model"):
        loaded.check_model(other, tmp_path / "cal.json")
