"""mcdepth_train: the offline trainer (stages 1-3, masks, DSA, evaluation, export).

Never imports rclpy: it shares files (model.onnx + model.json) with mcdepth_ros, and imports only
mcdepth_ros.contract (stdlib only), the one home of the format those files follow.
"""
__version__ = "0.1.0"
