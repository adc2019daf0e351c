"""The Ultralytics versions this package is tested against, checked once at import of the training stack."""

from __future__ import annotations

SUPPORTED_ULTRALYTICS = (">=8.4.190", "<8.5")
_LOW, _HIGH = (8, 4, 190), (8, 5, 0)


def _parse(version: str) -> tuple[int, ...]:
    parts = []
    for piece in version.split(".")[:3]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts)


def check_ultralytics_version(version: str | None = None) -> str:
    """Raise ImportError with a clear message when the installed Ultralytics is outside the tested range."""
    if version is None:
        import ultralytics

        version = ultralytics.__version__
    if not (_LOW <= _parse(version) < _HIGH):
        raise ImportError(
            f"yolo_gism needs ultralytics{','.join(SUPPORTED_ULTRALYTICS)} (its trainer internals are what this "
            f"package is tested against), but ultralytics=={version} is installed. "
            f"Install a supported version: pip install 'ultralytics{','.join(SUPPORTED_ULTRALYTICS)}'"
        )
    return version
