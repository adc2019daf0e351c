"""Packaging promises: a torch-free core install for edge devices, and GISM defaults shipped as package data."""

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_core_install_is_the_torch_free_runtime():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    core = " ".join(project["dependencies"]).lower()
    assert not any(name in core for name in ("torch", "ultralytics"))
    train = " ".join(project["optional-dependencies"]["train"]).lower()
    for needed in ("torch", "ultralytics", "onnxslim", "cloudpickle", "faster-coco-eval"):
        assert needed in train


def test_cfg_yaml_ships_inside_the_package():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert config["package-dir"]["yolo_gism.cfg"] == "cfg" and "yolo_gism.cfg" in config["packages"]
    assert "*.yaml" in config["package-data"]["yolo_gism.cfg"]
    from yolo_gism.config import default_yaml_path

    assert default_yaml_path().read_text() == (ROOT / "cfg" / "gism.yaml").read_text()


def test_console_script_lists_commands():
    out = subprocess.run([sys.executable, "-m", "yolo_gism.cli", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and all(c in out.stdout for c in ("distill", "data", "fps", "export", "tune", "demo"))
    bad = subprocess.run([sys.executable, "-m", "yolo_gism.cli", "nope"], capture_output=True, text=True)
    assert bad.returncode == 2 and "unknown command 'nope'" in bad.stderr
