"""Pure, batched camera geometry: intrinsics, projection, poses, warping, splatting, surfaces, depth range."""
from .camera import backproject, flow_to_offset, intrinsics_pyramid, pixel_grid, project, scale_intrinsics, transform_points
from .disparity import depth_to_sigmoid, sigmoid_to_depth
from .pose import axis_angle_to_matrix, euler_to_matrix, invert_pose, pose_vec_to_matrix
from .splat import SplatResult, forward_splat, splat_to_reference
from .surface import depth_to_normals, fit_plane, ground_mask_from_normals
from .warp import backward_warp, pixels_to_grid

__all__ = [
    "axis_angle_to_matrix", "backproject", "backward_warp", "depth_to_normals", "depth_to_sigmoid", "euler_to_matrix",
    "fit_plane", "flow_to_offset", "forward_splat", "ground_mask_from_normals", "intrinsics_pyramid",
    "invert_pose", "pixel_grid", "pixels_to_grid", "pose_vec_to_matrix", "project", "scale_intrinsics", "sigmoid_to_depth",
    "splat_to_reference", "SplatResult", "transform_points",
]
