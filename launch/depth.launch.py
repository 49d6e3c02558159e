"""Dense monocular depth on a vehicle camera: ``ros2 launch mcdepth_ros depth.launch.py model_dir:=/abs/path/NAME``.

Starts ``depth_node`` with the parameters of ``params_file`` (default: the package's
``config/depth.yaml``). A launch argument below overrides the file only when set on the command
line: each defaults to '' ("not set"), so a value in your params file is never replaced by a launch
default. A relative ``model_dir`` (argument or params file) is resolved against the params file's
folder (``mcdepth_ros.launch_params``). Topics: ``<camera_namespace>/<image_topic>`` (or its
``/compressed``) and ``<camera_namespace>/<camera_info_topic>`` in;
``<namespace>/depth/{image,camera_info,colored,points}`` out.
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare

from mcdepth_ros.launch_params import OVERRIDE_ARGUMENTS, node_overrides

def _start_node(context):
    params_file = LaunchConfiguration("params_file").perform(context)
    arguments = {name: LaunchConfiguration(name).perform(context) for name in OVERRIDE_ARGUMENTS}
    # value_type keeps launch from YAML-parsing the strings (a model_dir of digits, '' or 'true').
    overrides = {name: ParameterValue(value, value_type=type(value))
                 for name, value in node_overrides(arguments, params_file).items()}
    camera_ns = LaunchConfiguration("camera_namespace")
    image_topic = LaunchConfiguration("image_topic")
    return [Node(
        package="mcdepth_ros",
        executable="depth_node",
        name="depth_node",
        namespace=LaunchConfiguration("namespace"),
        output="screen",
        parameters=[params_file, overrides] if overrides else [params_file],
        remappings=[
            ("image", [camera_ns, "/", image_topic]),
            ("image/compressed", [camera_ns, "/", image_topic, "/compressed"]),
            ("camera_info", [camera_ns, "/", LaunchConfiguration("camera_info_topic")]),
        ],
    )]


def generate_launch_description():
    return LaunchDescription([
        DeclareLaunchArgument(
            "model_dir", default_value="",
            description="Folder with model.onnx + model.json from `mcdepth-train export`; relative = "
                        "from the params file's folder ('' = not set: the params file's value)"),
        DeclareLaunchArgument(
            "backend", default_value="", choices=["", "auto", "tensorrt", "onnxruntime", "torch"],
            description="Inference backend; auto picks the best that loads (TensorRT, then ONNX Runtime, then torch) ('' = not set: the params file's value)."),
        DeclareLaunchArgument(
            "device", default_value="", choices=["", "auto", "cpu", "cuda", "tensorrt"],
            description="Where the backend runs (cpu, cuda, or ONNX Runtime's TensorRT provider) ('' = not set: the params file's value)."),
        DeclareLaunchArgument(
            "precision", default_value="", choices=["", "fp32", "fp16", "int8"],
            description="TensorRT engine precision (built on first start, cached beside the model) ('' = not set: the params file's value)."),
        DeclareLaunchArgument(
            "camera_namespace", default_value="/camera",
            description="Namespace of the camera driver's topics."),
        DeclareLaunchArgument(
            "image_topic", default_value="image_raw",
            description="Image topic inside camera_namespace (the compressed one is this plus /compressed)."),
        DeclareLaunchArgument(
            "camera_info_topic", default_value="camera_info",
            description="CameraInfo topic inside camera_namespace."),
        DeclareLaunchArgument(
            "image_transport", default_value="", choices=["", "raw", "compressed"],
            description="raw (sensor_msgs/Image) or compressed (sensor_msgs/CompressedImage) ('' = not set: the params file's value)."),
        DeclareLaunchArgument(
            "scale_mode", default_value="", choices=["", "relative", "fixed", "camera_height"],
            description="Depth scale: relative, fixed, camera_height (metric from the mounting height) ('' = not set: the params file's value)."),
        DeclareLaunchArgument(
            "camera_height", default_value="",
            description="Camera height above the ground in metres, for scale_mode camera_height ('' = not set: the params file's value)."),
        DeclareLaunchArgument(
            "publish_colored", default_value="", choices=["", "true", "false"],
            description="Also publish depth/colored (bgr8 turbo colour map for RViz) ('' = not set: the params file's value)."),
        DeclareLaunchArgument(
            "publish_points", default_value="", choices=["", "true", "false"],
            description="Also publish depth/points (PointCloud2) ('' = not set: the params file's value)."),
        DeclareLaunchArgument(
            "namespace", default_value="",
            description="Namespace of the depth node and its output topics."),
        DeclareLaunchArgument(
            "params_file",
            default_value=PathJoinSubstitution([FindPackageShare("mcdepth_ros"), "config", "depth.yaml"]),
            description="YAML with the node's parameters (defaults: the package's config/depth.yaml)."),
        OpaqueFunction(function=_start_node),
    ])
