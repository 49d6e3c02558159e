"""Dense monocular depth on a vehicle camera: ``ros2 launch mcdepth_ros depth.launch.py model_dir:=trt_engines/NAME``.

Starts ``depth_node`` with the defaults of ``config/depth.yaml`` (or ``params_file:=``), then the
launch arguments below on top. Topics: ``<camera_namespace>/<image_topic>`` (or its ``/compressed``)
and ``<camera_namespace>/<camera_info_topic>`` in; ``<namespace>/depth/{image,camera_info,colored,points}`` out.
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare


def generate_launch_description():
    camera_ns = LaunchConfiguration("camera_namespace")
    image_topic = LaunchConfiguration("image_topic")
    return LaunchDescription([
        DeclareLaunchArgument(
            "model_dir", default_value="",
            description="Folder with model.onnx + model.json from `mcdepth-train export` (e.g. trt_engines/NAME)."),
        DeclareLaunchArgument(
            "backend", default_value="auto", choices=["auto", "tensorrt", "onnxruntime", "torch"],
            description="Inference backend; auto picks the best that loads (TensorRT, then ONNX Runtime, then torch)."),
        DeclareLaunchArgument(
            "device", default_value="auto", choices=["auto", "cpu", "cuda", "tensorrt"],
            description="Where the backend runs (cpu, cuda, or ONNX Runtime's TensorRT provider)."),
        DeclareLaunchArgument(
            "precision", default_value="", choices=["", "fp32", "fp16", "int8"],
            description="TensorRT engine precision, empty = model.json's (built on first start, cached beside the model)."),
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
            "image_transport", default_value="raw", choices=["raw", "compressed"],
            description="raw (sensor_msgs/Image) or compressed (sensor_msgs/CompressedImage)."),
        DeclareLaunchArgument(
            "scale_mode", default_value="", choices=["", "relative", "fixed", "camera_height"],
            description="Depth scale: relative, fixed, camera_height (metric from the mounting height); empty = model.json's."),
        DeclareLaunchArgument(
            "camera_height", default_value="1.5",
            description="Camera height above the ground in metres, for scale_mode camera_height."),
        DeclareLaunchArgument(
            "publish_colored", default_value="false",
            description="Also publish depth/colored (bgr8 turbo colour map for RViz)."),
        DeclareLaunchArgument(
            "publish_points", default_value="false",
            description="Also publish depth/points (PointCloud2)."),
        DeclareLaunchArgument(
            "namespace", default_value="",
            description="Namespace of the depth node and its output topics."),
        DeclareLaunchArgument(
            "params_file",
            default_value=PathJoinSubstitution([FindPackageShare("mcdepth_ros"), "config", "depth.yaml"]),
            description="YAML with the node's other parameters (defaults: the package's config/depth.yaml)."),
        Node(
            package="mcdepth_ros",
            executable="depth_node",
            name="depth_node",
            namespace=LaunchConfiguration("namespace"),
            output="screen",
            # value_type keeps launch from YAML-parsing the strings ('' would become null).
            parameters=[
                LaunchConfiguration("params_file"),
                {
                    "model_dir": ParameterValue(LaunchConfiguration("model_dir"), value_type=str),
                    "backend": ParameterValue(LaunchConfiguration("backend"), value_type=str),
                    "device": ParameterValue(LaunchConfiguration("device"), value_type=str),
                    "precision": ParameterValue(LaunchConfiguration("precision"), value_type=str),
                    "image_transport": ParameterValue(LaunchConfiguration("image_transport"), value_type=str),
                    "scale_mode": ParameterValue(LaunchConfiguration("scale_mode"), value_type=str),
                    "camera_height": ParameterValue(LaunchConfiguration("camera_height"), value_type=float),
                    "publish_colored": ParameterValue(LaunchConfiguration("publish_colored"), value_type=bool),
                    "publish_points": ParameterValue(LaunchConfiguration("publish_points"), value_type=bool),
                },
            ],
            remappings=[
                ("image", [camera_ns, "/", image_topic]),
                ("image/compressed", [camera_ns, "/", image_topic, "/compressed"]),
                ("camera_info", [camera_ns, "/", LaunchConfiguration("camera_info_topic")]),
            ],
        ),
    ])
