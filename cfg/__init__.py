"""GISM defaults and recipes as YAML (installed as the ``yolo_gism.cfg`` package)."""
