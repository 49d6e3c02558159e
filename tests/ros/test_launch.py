"""launch/depth.launch.py and config/depth.yaml agree with what the node declares.

`launch`/`launch_ros` cannot be installed here, so the launch file is read with `ast` (not imported);
its parameter logic lives in ``mcdepth_ros.launch_params`` and is run here against a real node.
"""
from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import REPO
from rclpy.parameter import Parameter

from mcdepth_ros.depth_node import PARAMETER_NAMES, PARAMETERS, DepthNode
from mcdepth_ros.launch_params import OVERRIDE_ARGUMENTS, node_overrides

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
    assert {"launch", "launch.actions", "launch_ros.actions", "mcdepth_ros.launch_params"} <= modules
    assert "generate_launch_description" in {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    assert not _calls(tree, "eval") and not _calls(tree, "PythonExpression")


def _declared():
    declared = {}
    for call in _calls(_launch_tree(), "DeclareLaunchArgument"):
        declared[call.args[0].value] = call
    return declared


def test_every_argument_is_described_and_used():
    tree = _launch_tree()
    declared = _declared()
    for name, call in declared.items():
        desc = _kw(call, "description")
        assert isinstance(desc, ast.Constant) and len(desc.value) > 15, f"{name} needs a description"
        assert _kw(call, "default_value") is not None, f"{name} needs a default"
    used = {c.args[0].value for c in _calls(tree, "LaunchConfiguration") if isinstance(c.args[0], ast.Constant)}
    # The overriding arguments are read in one loop over OVERRIDE_ARGUMENTS.
    assert any(isinstance(c.args[0], ast.Name) for c in _calls(tree, "LaunchConfiguration"))
    used |= set(OVERRIDE_ARGUMENTS)
    assert used == set(declared), (used ^ set(declared))
    for name in ("model_dir", "backend", "camera_namespace", "image_topic", "camera_info_topic", "scale_mode",
                 "camera_height", "publish_colored", "publish_points", "namespace", "params_file"):
        assert name in declared, name


def test_overriding_arguments_default_to_not_set_and_match_the_node():
    declared = _declared()
    specs = {s.name: s for s in PARAMETERS}
    assert set(OVERRIDE_ARGUMENTS) <= set(PARAMETER_NAMES)
    for name, kind in OVERRIDE_ARGUMENTS.items():
        call = declared[name]
        assert _kw(call, "default_value").value == "", f"{name}: a default other than '' would override the params file"
        assert kind is type(specs[name].default), name
        choices = _kw(call, "choices")
        if specs[name].choices:
            assert tuple(ast.literal_eval(choices)) == ("",) + tuple(c for c in specs[name].choices if c != ""), name
        elif kind is bool:
            assert tuple(ast.literal_eval(choices)) == ("", "true", "false"), name


def test_node_in_launch_is_the_installed_entry_point_with_remappings():
    tree = _launch_tree()
    (node,) = _calls(tree, "Node")
    assert _kw(node, "package").value == "mcdepth_ros" and _kw(node, "executable").value == "depth_node"
    assert "depth_node = mcdepth_ros.depth_node:main" in (REPO / "setup.py").read_text()
    assert _calls(tree, "OpaqueFunction") and _calls(tree, "node_overrides")
    remapped = {t.elts[0].value for t in _kw(node, "remappings").elts}
    assert remapped == {"image", "image/compressed", "camera_info"}


def _user_params_file(tmp_path, model_dir=None) -> Path:
    """A user's own params file beside their model folder: camera_height 1.23, publish_colored true."""
    text = CONFIG.read_text().replace("camera_height: 1.5 ", "camera_height: 1.23").replace(
        "publish_colored: false", "publish_colored: true")
    if model_dir is not None:
        text = text.replace("ros__parameters:\n", f"ros__parameters:\n    model_dir: {model_dir}\n")
    path = tmp_path / "robot" / "depth.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _launched_node(ros, params_file, arguments):
    """The node as the launch file starts it: the params file, then the overrides (later wins)."""
    overrides = node_overrides({name: arguments.get(name, "") for name in OVERRIDE_ARGUMENTS}, params_file)
    return ros.add(DepthNode(cli_args=["--ros-args", "--params-file", str(params_file)],
                             parameter_overrides=[Parameter(k, value=v) for k, v in overrides.items()],
                             context=ros.context)), overrides


def test_params_file_values_survive_launch_arguments_not_set(ros, model_dir, tmp_path):
    # The user's model folder sits beside their params file and is named relative to it.
    robot = _user_params_file(tmp_path, model_dir="models/kitti")
    shutil.copytree(model_dir, robot.parent / "models" / "kitti")
    node, overrides = _launched_node(ros, robot, {})
    assert overrides == {"model_dir": str(robot.parent / "models" / "kitti")}  # absolute, from the file's folder
    assert node.get_parameter("camera_height").value == 1.23 and node.params["publish_colored"] is True
    assert node.get_parameter("backend").value == "auto"


def test_params_file_value_is_overridden_only_by_an_argument_the_user_set(ros, model_dir, tmp_path):
    robot = _user_params_file(tmp_path)
    node, overrides = _launched_node(ros, robot, {"model_dir": str(model_dir), "camera_height": "2",
                                                  "publish_colored": "false", "backend": "onnxruntime"})
    assert overrides == {"model_dir": str(model_dir), "camera_height": 2.0, "publish_colored": False,
                         "backend": "onnxruntime"}
    assert node.params["camera_height"] == 2.0 and node.params["publish_colored"] is False
    assert node.params["point_stride"] == 4  # untouched


def test_relative_model_dir_argument_resolves_against_the_params_file_not_the_cwd(tmp_path, monkeypatch):
    robot = _user_params_file(tmp_path)
    monkeypatch.chdir(tmp_path)
    assert node_overrides({"model_dir": "models/x"}, robot)["model_dir"] == str(robot.parent / "models" / "x")
    with pytest.raises(ValueError, match="launch argument publish_points: expected true or false"):
        node_overrides({"publish_points": "yes"}, robot)
    with pytest.raises(ValueError, match="launch argument camera_height: expected a number"):
        node_overrides({"camera_height": "high"}, robot)


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
    assert (share / "config" / "fastdds_large_images.xml").is_file()  # the Fast DDS profile for large images
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


def test_package_xml_lists_what_the_node_and_bag_tool_import():
    """Every non-stdlib module mcdepth_ros imports is in package.xml: a rosdep key, or named in a pip comment."""

    key = {"numpy": "python3-numpy", "cv2": "python3-opencv", "yaml": "python3-yaml",
           "onnxruntime": "python3-onnxruntime-pip", "tqdm": "python3-tqdm", "cuda": "cuda-python"}
    text = (REPO / "package.xml").read_text()
    imported = set()
    for path in (REPO / "mcdepth_ros").rglob("*.py"):
        for n in ast.walk(ast.parse(path.read_text())):
            if isinstance(n, ast.Import):
                imported |= {a.name.split(".")[0] for a in n.names}
            elif isinstance(n, ast.ImportFrom) and n.level == 0:
                imported.add(n.module.split(".")[0])
    third_party = {m for m in imported if m not in sys.stdlib_module_names and m not in ("mcdepth_ros", "__future__")}
    assert {"rclpy", "numpy", "cv2", "onnxruntime", "rosbags", "tqdm"} <= third_party
    missing = [m for m in sorted(third_party) if key.get(m, m) not in text]
    assert not missing, f"package.xml does not mention {missing}"
