"""launch/depth.launch.py and config/depth.yaml agree with what the node declares.

`launch`/`launch_ros` cannot be installed here, so the launch file is read with `ast` (not imported).
"""
from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
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


COLCON = shutil.which("colcon") or str(Path(sys.executable).with_name("colcon"))
# What `colcon build` reads from the source tree (a copy, so the build never writes into the repo).
PACKAGE_FILES = ("setup.py", "setup.cfg", "package.xml", "README.md", "resource", "launch", "config",
                 "mcdepth_ros", "mcdepth_train")


@pytest.mark.skipif(not Path(COLCON).is_file(), reason="colcon is not installed (pip install -e .[test] brings it)")
def test_colcon_build_installs_launch_config_marker_and_a_node_that_starts(tmp_path):
    src = tmp_path / "src" / "mcdepth"
    src.mkdir(parents=True)
    for name in PACKAGE_FILES:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy2(REPO / name, src / name)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"}
    env.pop("PYTHONPATH", None)
    build = subprocess.run([COLCON, "build", "--packages-select", "mcdepth_ros"], cwd=tmp_path, env=env,
                           capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    prefix = tmp_path / "install" / "mcdepth_ros"
    share = prefix / "share" / "mcdepth_ros"
    assert (share / "launch" / "depth.launch.py").read_bytes() == LAUNCH.read_bytes()
    assert (share / "config" / "depth.yaml").read_bytes() == CONFIG.read_bytes()
    assert (share / "package.xml").is_file()
    assert (prefix / "share" / "ament_index" / "resource_index" / "packages" / "mcdepth_ros").is_file()
    node = prefix / "lib" / "mcdepth_ros" / "depth_node"
    assert node.is_file() and os.access(node, os.X_OK)

    # The installed node, with the installed packages first on the path, starts and refuses a missing model.
    (site,) = (prefix / "lib").glob("python3.*/site-packages")
    run_env = {**env, "PYTHONPATH": str(site), "ROS_DOMAIN_ID": os.environ.get("ROS_DOMAIN_ID", "0")}
    where = subprocess.run([sys.executable, "-c", "import mcdepth_ros.depth_node as m; print(m.__file__)"],
                           cwd=tmp_path, env=run_env, capture_output=True, text=True, timeout=60)
    assert where.stdout.strip().startswith(str(site)), where.stderr
    started = subprocess.run([str(node), "--ros-args", "-p", f"model_dir:={tmp_path / 'no_model'}"],
                             cwd=tmp_path, env=run_env, capture_output=True, text=True, timeout=120)
    assert started.returncode == 1, started.stderr[-3000:]
    assert f"model_dir: no such folder: {tmp_path / 'no_model'}" in started.stderr
