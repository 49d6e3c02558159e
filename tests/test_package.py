"""Package-level promises: import isolation, the ament layout, the README/CI contract."""
from __future__ import annotations

import pkgutil
import re
import subprocess
import sys
import xml.etree.ElementTree as ET

from conftest import REPO


def _run_blocked(blocked: str, code: str) -> subprocess.CompletedProcess:
    # sys.modules[name] = None makes `import name` raise ImportError, as if it were not installed.
    prelude = f"import sys; sys.modules[{blocked!r}] = None\n"
    return subprocess.run([sys.executable, "-c", prelude + code], capture_output=True, text=True, cwd=REPO)


def test_mcdepth_ros_imports_without_torch():
    modules = [m.name for m in pkgutil.walk_packages([str(REPO / "mcdepth_ros")], "mcdepth_ros.")]
    code = "import importlib, mcdepth_ros\n" + "".join(f"importlib.import_module({m!r})\n" for m in modules)
    code += "assert 'torch' not in sys.modules or sys.modules['torch'] is None\nprint('ok')"
    result = _run_blocked("torch", code)
    assert result.returncode == 0, result.stderr
    assert "ok" in result.stdout


def test_mcdepth_train_imports_without_rclpy():
    modules = [m.name for m in pkgutil.walk_packages([str(REPO / "mcdepth_train")], "mcdepth_train.")]
    code = "import importlib\n" + "".join(f"importlib.import_module({m!r})\n" for m in modules) + "print(len(sys.modules))"
    result = _run_blocked("rclpy", code)
    assert result.returncode == 0, result.stderr


def test_package_xml_is_format_3_ament_python_with_exec_depends():
    root = ET.parse(REPO / "package.xml").getroot()
    assert root.get("format") == "3"
    assert root.findtext("name") == "mcdepth_ros"
    assert root.find("export/build_type").text == "ament_python"
    deps = {e.text for e in root.findall("exec_depend")}
    for needed in ("rclpy", "sensor_msgs", "std_msgs", "diagnostic_msgs", "cv_bridge", "python3-numpy", "python3-opencv"):
        assert needed in deps, needed
    assert (REPO / "resource" / "mcdepth_ros").is_file()
    assert "script_dir=$base/lib/mcdepth_ros" in (REPO / "setup.cfg").read_text()


def test_ci_runs_the_readme_set_up_and_test_lines():
    readme = (REPO / "README.md").read_text()
    ci = (REPO / ".ci" / "run").read_text()
    for marker in ("setup", "test"):
        block = re.search(rf"<!-- ci:{marker} -->\s*```bash\n(.+?)\n```", readme)
        assert block, f"README lacks the {marker} command block"
        assert f"readme_command {marker}" in ci
    setup_line = re.search(r"<!-- ci:setup -->\s*```bash\n(.+?)\n```", readme).group(1)
    assert "constraints.txt" in setup_line and "[train,ros,test]" in setup_line
    # The extraction in .ci/run finds exactly these lines.
    out = subprocess.run(
        ["bash", "-c", "source <(sed -n '/^readme_command()/,/^}/p' .ci/run); readme_command setup; readme_command test"],
        capture_output=True, text=True, cwd=REPO,
    )
    lines = out.stdout.strip().splitlines()
    assert lines[0] == setup_line
    assert lines[1].startswith(".venv/bin/python -m pytest")


def test_mcdepth_train_help_lists_subcommands():
    result = subprocess.run([sys.executable, "-m", "mcdepth_train.cli", "--help"], capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0
    for command in ("stage1", "masks", "objects", "dsa", "pseudo", "stage3", "run", "demo", "eval", "export"):
        assert command in result.stdout


def test_readme_is_a_guide_and_its_links_resolve():
    # The README is a user's guide; results and their history live in docs/ (issue 17).
    readme = (REPO / "README.md").read_text()
    assert len(readme) <= 14_000, f"README.md has {len(readme)} characters; move results to docs/results.md"
    for path in ("docs/results.md", "docs/benchmarks.md", "docs/stage3.md"):
        assert f"({path})" in readme, f"README does not link {path}"
    for doc in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
        for target in re.findall(r"\]\(([^)#:]+\.(?:md|png|json))\)", doc.read_text()):
            assert (doc.parent / target).is_file(), f"{doc.name} links {target}, which does not exist"
