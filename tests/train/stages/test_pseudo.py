"""Pseudo labels: Eq. 5 composition, storage round trips, manifest completeness, inspection strips."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from mcdepth_train.stages.pseudo.labels import (
    PseudoLabelStore,
    agrees_with_ground,
    compose_pseudo_label,
    decode_png16,
    encode_png16,
    frame_key,
    inspection_strip,
    write_inspection_strip,
)


def test_composition_background_objects_and_nearer_wins():
    depth = np.full((4, 6), 10.0, np.float32)
    masks = np.zeros((2, 4, 6), bool)
    masks[0, :, 0:3] = True
    masks[1, :, 2:5] = True  # overlaps object 0 in column 2
    obj = np.stack([np.full((4, 6), 2.0), np.full((4, 6), 1.0)]).astype(np.float32)
    label, dyn = compose_pseudo_label(depth, obj, masks, np.array([3.0, 5.0]))  # object 0 at 6 m, object 1 at 5 m
    assert np.allclose(label[:, 0:2], 6.0)
    assert np.allclose(label[:, 2], 5.0)  # the overlap: the nearer (object 1) wins
    assert np.allclose(label[:, 3:5], 5.0)
    assert np.allclose(label[:, 5], 10.0)  # background from stage 1
    assert dyn[:, :5].all() and not dyn[:, 5].any()
    scales = np.array([3.0, 12.0])  # now object 1 is at 12 m: object 0 (6 m) wins the overlap
    label, _ = compose_pseudo_label(depth, obj, masks, scales)
    assert np.allclose(label[:, 2], 6.0)
    empty, dyn = compose_pseudo_label(depth, np.zeros((0, 4, 6)), np.zeros((0, 4, 6), bool), np.zeros(0))
    assert np.array_equal(empty, depth) and not dyn.any()
    with pytest.raises(ValueError, match="scales"):
        compose_pseudo_label(depth, obj, masks, np.array([1.0, -1.0]))


def test_png16_encoding_relative_error_bound():
    rng = np.random.default_rng(0)
    label = np.exp(rng.uniform(np.log(0.1), np.log(100.0), (48, 64))).astype(np.float32)
    label[0, :5] = 0  # no label
    codes, log_min, log_step = encode_png16(label)
    assert codes.dtype == np.uint16 and (codes[0, :5] == 0).all() and codes.max() == 65535
    back = decode_png16(codes, log_min, log_step)
    valid = label > 0
    rel = np.abs(back[valid] - label[valid]) / label[valid]
    assert rel.max() < 1e-4  # log coding: 1000:1 range -> <= 5.3e-5 everywhere
    assert (back[~valid] == 0).all()
    const, lmin, step = encode_png16(np.full((2, 2), 7.0))
    assert np.allclose(decode_png16(const, lmin, step), 7.0)


@pytest.mark.parametrize("storage, bound", [("png16", 1e-3), ("float16", 1e-3)])
def test_store_round_trip_and_manifest(tmp_path, storage, bound):
    rng = np.random.default_rng(1)
    keys = [frame_key("seq_a", 3), frame_key("seq_a", 4)]
    store = PseudoLabelStore(tmp_path / "pseudo", storage, expected=keys, source={"dsa": "dsa/last.pt"})
    labels = {}
    for key in keys:
        label = rng.uniform(0.5, 80, (32, 48)).astype(np.float32)
        dyn = rng.random((32, 48)) > 0.7
        store.write(key, label, dyn)
        labels[key] = (label, dyn)
    store.save_manifest()
    again = PseudoLabelStore.open(tmp_path / "pseudo")
    assert again.storage == storage and again.is_complete()
    for key, (label, dyn) in labels.items():
        back, back_dyn = again.read(key)
        assert np.abs(back - label).max() / label.min() < 1 and (np.abs(back - label) / label).max() < bound
        assert np.array_equal(back_dyn, dyn)
    manifest = json.loads((tmp_path / "pseudo" / "manifest.json").read_text())
    assert manifest["complete"] is True and manifest["storage"] == storage
    size = (tmp_path / "pseudo" / manifest["frames"][keys[0]]["label"]).stat().st_size
    assert size < 32 * 48 * 4  # smaller than float32
    assert not list((tmp_path / "pseudo").rglob("*.tmp"))


def test_missing_or_damaged_file_makes_store_incomplete_and_is_recreated(tmp_path):
    keys = [frame_key("s", i) for i in range(3)]
    store = PseudoLabelStore(tmp_path, "png16", expected=keys)
    for key in keys[:2]:
        store.write(key, np.full((8, 8), 5.0), np.zeros((8, 8), bool))
    store.save_manifest()
    assert json.loads((tmp_path / "manifest.json").read_text())["complete"] is False
    assert store.missing() == [keys[2]]
    store.write(keys[2], np.full((8, 8), 6.0), np.zeros((8, 8), bool))
    store.save_manifest()
    assert PseudoLabelStore.open(tmp_path).is_complete()
    (tmp_path / store.frames[keys[0]]["label"]).unlink()
    reopened = PseudoLabelStore.open(tmp_path)
    assert reopened.missing() == [keys[0]] and not reopened.is_complete()
    calls = []

    def make(key):
        calls.append(key)
        return np.full((8, 8), 5.0), np.ones((8, 8), bool)

    label, dyn = reopened.get_or_create(keys[0], make)
    assert calls == [keys[0]] and np.allclose(label, 5.0, rtol=1e-4) and dyn.all()
    reopened.get_or_create(keys[1], make)  # intact: read, not re-made
    assert calls == [keys[0]]
    # A damaged file (hash mismatch) also counts as missing.
    path = tmp_path / reopened.frames[keys[1]]["label"]
    cv2.imwrite(str(path), np.zeros((8, 8), np.uint16))
    assert reopened.missing() == [keys[1]]
    with pytest.raises(ValueError, match="storage"):
        PseudoLabelStore(tmp_path, "float16")


def test_inspection_strip(tmp_path):
    h, w = 16, 20
    image = np.full((h, w, 3), 0.5, np.float32)
    dyn = np.zeros((h, w), bool)
    dyn[:4] = True
    masks = np.zeros((2, h, w), bool)
    masks[0, 0:5, 0:5] = True
    masks[1, 10:15, 10:15] = True
    depth = np.full((h, w), 10.0, np.float32)
    label = depth.copy()
    label[0:8] = 5.0  # a quarter of both maps: inside the 95th percentile of inverse depth
    strip = inspection_strip(image, dyn, masks, np.array([True, False]), depth, label)
    assert strip.shape == (h, 5 * w, 3) and strip.dtype == np.uint8
    assert (strip[0, w] == 255).all() and (strip[8, w] == 0).all()
    assert tuple(strip[2, 2 * w + 2]) == (230, 50, 50) and tuple(strip[12, 2 * w + 12]) == (60, 200, 60)
    # The nearer label pixels are brighter in the shared inverse-depth colour scale.
    assert strip[2, 4 * w + 2].astype(int).sum() > strip[12, 4 * w + 12].astype(int).sum()
    path = write_inspection_strip(tmp_path / "inspect" / "f.png", strip)
    back = cv2.imread(str(path))[..., ::-1]
    assert np.array_equal(back, strip)


def test_objects_far_off_the_ground_they_stand_on_are_left_out_either_way():
    labelled = np.array([10.0, 14.0, 50.0, 4.0, 20.0, 19.9])
    contact = np.array([10.0, 10.0, 10.0, 10.0, np.nan, 10.0])
    keep = agrees_with_ground(labelled, contact, max_ratio=2.0)
    # within 2x: kept; 5x too far and 2.5x too near: left out; no ground to check against: kept
    assert keep.tolist() == [True, True, False, False, True, True]
    assert agrees_with_ground(labelled, contact, max_ratio=1.3).tolist() == [True, False, False, False, True, False]


def test_ground_check_off_and_bad_arguments():
    labelled, contact = np.array([100.0, 0.1]), np.array([1.0, 1.0])
    assert agrees_with_ground(labelled, contact, max_ratio=0).all()
    for bad in (1.0, 0.5, -2.0):
        with pytest.raises(ValueError, match="max_ratio"):
            agrees_with_ground(labelled, contact, max_ratio=bad)
    with pytest.raises(ValueError, match="one per object"):
        agrees_with_ground(labelled, contact[:1], max_ratio=2.0)
    assert agrees_with_ground(np.zeros(0), np.zeros(0), max_ratio=2.0).shape == (0,)
