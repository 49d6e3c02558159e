"""mcdepth_train: the offline trainer (stages 1-3, masks, DSA, evaluation, export).

Never imports rclpy: it shares files (model.onnx + model.json), not imports, with mcdepth_ros.
"""
__version__ = "0.1.0"
