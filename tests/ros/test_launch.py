"""launch/depth.launch.py and config/depth.yaml agree with what the node declares.

`launch`/`launch_ros` cannot be installed here, so the launch file is read with `ast` (not imported).
"""
from __future__ import annotations

import ast
import re

import yaml
from conftest import REPO
from rclpy.parameter import Parameter

from mcdepth_ros.depth_node import PARAMETER_NAMES, PARAMETERS, DepthNode

LAUNCH = REPO / "launch" / "depth.launch.py"
CONFIG = REPO / "config" / "depth.yaml"


def _calls(tree, name):
    return [n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", None) == name]


def _kw(call, key):
    return next((k.value for k in call.keywords if k.arg == key), None)


def _launch_tree():
    return ast.parse(LAUNCH.read_text(), filename=str(LAUNCH))


def test_launch_imports_real_ros2_launch_and_has_no_eval():
    tree = _launch_tree()
    modules = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert {"launch", "launch.actions", "launch_ros.actions"} <= modules
    assert "generate_launch_description" in {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    assert not _calls(tree, "eval") and not _calls(tree, "PythonExpression")


def test_every_argument_is_described_and_used():
    tree = _launch_tree()
    declared = {}
    for call in _calls(tree, "DeclareLaunchArgument"):
        name = call.args[0].value
        desc = _kw(call, "description")
        assert isinstance(desc, ast.Constant) and len(desc.value) > 15, f"{name} needs a description"
        assert _kw(call, "default_value") is not None, f"{name} needs a default"
        declared[name] = call
    used = {c.args[0].value for c in _calls(tree, "LaunchConfiguration")}
    assert used == set(declared), (used ^ set(declared))
    for name in ("model_dir", "backend", "camera_namespace", "image_topic", "camera_info_topic", "scale_mode",
                 "camera_height", "publish_colored", "publish_points", "namespace"):
        assert name in declared, name
    # Arguments named like a node parameter offer the same choices as the node accepts.
    specs = {s.name: s for s in PARAMETERS}
    for name, call in declared.items():
        choices = _kw(call, "choices")
        if choices is not None and name in specs:
            assert tuple(ast.literal_eval(choices)) == specs[name].choices, name


def test_node_parameters_in_launch_are_declared_by_the_node():
    tree = _launch_tree()
    (node,) = _calls(tree, "Node")
    assert _kw(node, "package").value == "mcdepth_ros" and _kw(node, "executable").value == "depth_node"
    assert "depth_node = mcdepth_ros.depth_node:main" in (REPO / "setup.py").read_text()
    dicts = [d for d in ast.walk(_kw(node, "parameters")) if isinstance(d, ast.Dict)]
    keys = {k.value for d in dicts for k in d.keys}
    assert keys and keys <= set(PARAMETER_NAMES), keys - set(PARAMETER_NAMES)
    # Each value is typed as the node declares it (launch would YAML-parse a bare string).
    specs = {s.name: s for s in PARAMETERS}
    for d in dicts:
        for key, value in zip(d.keys, d.values):
            assert isinstance(value, ast.Call) and value.func.id == "ParameterValue", key.value
            assert _kw(value, "value_type").id == type(specs[key.value].default).__name__, key.value
    remapped = {t.elts[0].value for t in _kw(node, "remappings").elts}
    assert remapped == {"image", "image/compressed", "camera_info"}


def test_config_yaml_keys_and_types_match_the_node():
    params = yaml.safe_load(CONFIG.read_text())["/**"]["ros__parameters"]
    specs = {s.name: s for s in PARAMETERS}
    assert set(params) <= set(PARAMETER_NAMES), set(params) - set(PARAMETER_NAMES)
    assert "model_dir" not in params  # site-specific: given at launch
    for name, value in params.items():
        assert type(value) is type(specs[name].default), (name, value)
        assert value == specs[name].default, f"config/depth.yaml {name}={value!r} differs from the node's default"


def test_node_starts_with_the_config_file_as_ros_params(ros, model_dir):
    node = ros.add(DepthNode(cli_args=["--ros-args", "--params-file", str(CONFIG)],
                             parameter_overrides=[Parameter("model_dir", value=str(model_dir))], context=ros.context))
    assert node.get_parameter("point_stride").value == 4 and node.get_parameter("qos_in").value == "sensor_data"


def test_setup_installs_launch_and_config():
    setup = (REPO / "setup.py").read_text()
    assert re.search(r'glob\("launch/\*\.launch\.py"\)', setup) and re.search(r'glob\("config/\*\.yaml"\)', setup)
