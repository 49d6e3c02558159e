"""mcdepth_ros: the ROS 2 depth node and its inference backends.

Imports neither torch nor a backend library at module level: the vehicle may have only TensorRT
or only ONNX Runtime. Backends import their library when they are created.
"""
__version__ = "0.1.0"
