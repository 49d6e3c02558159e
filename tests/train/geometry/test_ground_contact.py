"""Ground plane and contact: the road's depth under an object's bottom edge."""
import numpy as np
import pytest

from mcdepth_train.geometry.ground_contact import (
    fit_ground_plane, ground_contact_depth, ground_contact_scale, ground_seen_below, height_over_camera,
)
from tests.train.geometry.helpers import flat_road


def test_ground_contact_reads_the_road_plane_under_the_object_across_a_gap():
    depth, road_depth = flat_road()
    mask = np.zeros(depth.shape, bool)
    mask[12:20, 8:14] = True  # the object's bottom edge: row 20 (lower edge of row 19)
    ground = np.zeros(depth.shape, bool)
    ground[24:] = True  # the ground mask stops 4 rows short of the object, as at 64x192
    ground[26, 2:6] = False
    depth_with_outliers = depth.copy()
    depth_with_outliers[30, :3] *= 5  # a few pixels wrongly called ground must not tilt the road
    plane = fit_ground_plane(depth_with_outliers, ground)
    assert ground_contact_depth(plane, mask) == pytest.approx(road_depth(20.0), rel=1e-3)
    object_depth = np.full(depth.shape, 2.0, np.float32)
    assert ground_contact_scale(depth_with_outliers, ground, object_depth, mask) == pytest.approx(road_depth(20.0) / 2.0, rel=1e-3)
    # No ground, no answer: NaN rather than a guess.
    assert fit_ground_plane(depth, np.zeros_like(ground)) is None
    assert np.isnan(ground_contact_depth(None, mask))
    assert np.isnan(ground_contact_scale(depth, np.zeros_like(ground), object_depth, mask))
    with pytest.raises(ValueError, match="empty"):
        ground_contact_depth(plane, np.zeros_like(mask))


def test_ground_plane_fit_weighs_every_row_alike():
    """A few near road rows of stage 1 off by 12%: on the plain inverse-depth error those rows (the
    largest inverse depths) decide the plane and pull it 7% too near a few rows under the horizon,
    where far cars stand (0.930 here); on the relative error they are the outliers the trim drops."""
    depth, road_depth = flat_road()
    ground = np.zeros(depth.shape, bool)
    ground[12:] = True  # from just under the horizon (row 10) down
    rows = np.arange(depth.shape[0])[:, None] + 0.5
    biased = depth * np.where(rows > depth.shape[0] - 4, 1.12, 1.0)  # the nearest four rows 12% too far
    plane = fit_ground_plane(biased, ground)
    far = np.zeros(depth.shape, bool)
    far[10:14, 8:14] = True  # bottom edge at row 14
    assert ground_contact_depth(plane, far) == pytest.approx(road_depth(14.0), rel=0.02)


def test_ground_seen_below_tells_a_visible_contact_from_one_out_of_view():
    ground = np.zeros((32, 24), bool)
    ground[24:, :12] = True  # road under the left half only
    standing = np.zeros_like(ground)
    standing[14:21, 4:10] = True  # bottom row 20: ground 4 rows under each column (within 32 // 8 = 4)
    assert ground_seen_below(ground, standing) == 1.0
    assert ground_seen_below(ground, standing, rows=2) == 0.0  # the gap is wider than 2 rows
    half = np.zeros_like(ground)
    half[14:21, 6:18] = True  # half its columns over the road
    assert ground_seen_below(ground, half) == 0.5
    cut = np.zeros_like(ground)
    cut[26:, 2:8] = True  # reaches the image's lower edge: nothing below it
    assert ground_seen_below(ground, cut) == 0.0
    with pytest.raises(ValueError, match="empty"):
        ground_seen_below(ground, np.zeros_like(ground))


def test_height_over_camera_is_the_object_height_over_the_camera_height():
    # Level camera 1.5 m over a flat road, f = 20 px, horizon at row 10: an upright object of
    # height H at depth Z spans rows cy + f(h - H)/Z .. cy + f h/Z.
    depth, _ = flat_road(h=32, w=24, f=20.0, cy=10.0, cam_height=1.5)
    ground = np.zeros(depth.shape, bool)
    ground[22:] = True
    plane = fit_ground_plane(depth, ground)
    car = np.zeros(depth.shape, bool)
    car[10:16, 4:9] = True  # H = 1.5 m at Z = 5 m: rows 10 .. 16
    truck = np.zeros(depth.shape, bool)
    truck[4:16, 12:18] = True  # H = 3 m at Z = 5 m: rows 4 .. 16
    assert height_over_camera(plane, car) == pytest.approx(1.0, rel=1e-3)
    assert height_over_camera(plane, truck) == pytest.approx(2.0, rel=1e-3)
    sky = np.zeros(depth.shape, bool)
    sky[1:9, 2:20] = True  # ends above the horizon: stands on nothing
    assert height_over_camera(plane, sky) == np.inf
    assert np.isnan(height_over_camera(None, car))
    assert np.isnan(height_over_camera(np.array([0.0, -0.1, 1.0]), car))  # inverse depth falls downwards: no road
    with pytest.raises(ValueError, match="empty"):
        height_over_camera(plane, np.zeros_like(car))
