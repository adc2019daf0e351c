"""The ``yolo-gism`` command: Ultralytics-style ``yolo-gism <command> key=value ...``."""

from __future__ import annotations

import importlib
import sys

import yaml

# command -> (module, function, one-line help). Each function takes the parsed key=value dict.
COMMANDS = {
    "distill": ("yolo_gism.api", "distill_cli", "train a student under a teacher with the GISM loss"),
    "data": ("yolo_gism.data.cli", "data_cli", "write the synthetic traffic dataset (or `data video` for a clip)"),
    "fps": ("yolo_gism.fps", "fps_cli", "frame rate and latency of models on a video stream"),
    "export": ("yolo_gism.export", "export_cli", "ONNX export (fp32/fp16/int8) with a parity report"),
    "tune": ("yolo_gism.tune", "tune_cli", "sweep temperature and alpha on a short schedule"),
    "demo": ("yolo_gism.demo", "demo_cli", "the whole job on the built-in synthetic traffic data"),
}


def parse_value(text: str):
    """Turn a command-line value into a Python value the way Ultralytics does (numbers, bools, None, lists)."""
    if text == "":
        return ""
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    return text if isinstance(value, dict) else value


def parse_args(argv: list[str]) -> tuple[list[str], dict]:
    """Split argv into positional words and a key=value dict; a repeated key is an error."""
    words, kwargs = [], {}
    for arg in argv:
        if "=" in arg:
            key, value = arg.split("=", 1)
            key = key.strip().lstrip("-").replace("-", "_")
            if not key:
                raise SystemExit(f"yolo-gism: malformed argument '{arg}', expected key=value")
            if key in kwargs:
                raise SystemExit(f"yolo-gism: argument '{key}' given twice")
            kwargs[key] = parse_value(value)
        else:
            words.append(arg)
    return words, kwargs


def usage() -> str:
    lines = ["usage: yolo-gism <command> key=value ...", "", "commands:"]
    lines += [f"  {name:<8} {help_}" for name, (_, _, help_) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in {"-h", "--help", "help"}:
        print(usage())
        return 0
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        print(f"yolo-gism: unknown command '{command}'\n\n{usage()}", file=sys.stderr)
        return 2
    module, function, _ = COMMANDS[command]
    words, kwargs = parse_args(rest)
    try:
        getattr(importlib.import_module(module), function)(words, kwargs)
    except (ValueError, FileNotFoundError) as e:
        print(f"yolo-gism {command}: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
