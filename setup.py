"""mcdepth: scale-consistent self-supervised monocular depth, with a ROS 2 node.

One distribution, two packages that share files (model.onnx + model.json) and one stdlib-only
module, the model contract (``mcdepth_ros/contract.py``):
- ``mcdepth_ros``: the rclpy node and inference backends (no torch at import time);
- ``mcdepth_train``: the offline trainer (never imports rclpy; imports the contract to write it).

Works both with ``pip install -e .`` and as an ament_python package under ``colcon build``.
"""
from glob import glob

from setuptools import find_packages, setup

PACKAGE_NAME = "mcdepth_ros"

setup(
    name=PACKAGE_NAME,
    version="0.1.0",
    description="Scale-consistent self-supervised monocular depth for vehicles and robots, with a ROS 2 node",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["mcdepth_ros", "mcdepth_ros.*", "mcdepth_train", "mcdepth_train.*"]),
    package_data={"mcdepth_train": ["data/splits/*/*.txt", "configs/*.yaml", "networks/weights/*.pt"]},
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + PACKAGE_NAME]),
        ("share/" + PACKAGE_NAME, ["package.xml"]),
        ("share/" + PACKAGE_NAME + "/launch", glob("launch/*.launch.py")),
        ("share/" + PACKAGE_NAME + "/config", glob("config/*.yaml") + glob("config/*.xml")),
    ],
    # The node's own needs; rclpy and the message packages come from ROS (or the ros extra).
    install_requires=["numpy", "pyyaml"],
    extras_require={
        "train": [
            "torch>=2.1",
            "torchvision>=0.16",
            "opencv-python-headless",
            "tensorboard",
            "tqdm",
            "rosbags>=0.9",
            "onnx",
            "onnxruntime",
            "onnxscript",
            "matplotlib",
            "scipy",
        ],
        "ros": [
            "ros-jazzy-rclpy[fastrtps]",
            "ros-jazzy-sensor-msgs",
            "ros-jazzy-std-msgs",
            "ros-jazzy-geometry-msgs",
            "ros-jazzy-diagnostic-msgs",
            "onnxruntime",
            "opencv-python-headless",
        ],
        # colcon and ament_package: tests/ros/test_launch.py builds the package with a real `colcon build`;
        # rosbags-image: the image decoder's outside reference (tests/ros/test_conversions_reference.py).
        "test": ["pytest", "pytest-timeout", "rosbags-image", "colcon-core", "colcon-ros", "colcon-python-setup-py",
                 "colcon-package-selection", "ros-jazzy-ament-package"],
    },
    zip_safe=True,
    maintainer="mcdepth developers",
    maintainer_email="mcdepth@example.org",
    tests_require=["pytest"],
    entry_points={
        "console_scripts": [
            "depth_node = mcdepth_ros.depth_node:main",
            "mcdepth-bag-depth = mcdepth_ros.bag_depth:main",
            "mcdepth-train = mcdepth_train.cli:main",
        ],
    },
)
