"""Radar charts of predicted features, one polygon per image.

Each axis runs over its feature's range in `features.FEATURES` (0 to 1; loudness from
-60 dB at the centre to 0 dB at the rim, linear in dB, so typical masters at -4 to -10 dB
sit near the rim). Values outside a range are clipped to it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from pressedplay.atomic import replacing
from pressedplay.errors import UserError
from pressedplay.features import FEATURES, Feature

# Formats matplotlib writes without extra software (pgf needs LaTeX, avif a plugin).
FORMATS = ("png", "jpg", "jpeg", "svg", "pdf")


def _label(feature: Feature) -> str:
    if feature.unit:
        return f"{feature.name}\n({feature.low:g} to {feature.high:g} {feature.unit})"
    return feature.name


def scaled(features: dict[str, float]) -> np.ndarray:
    """The eight features mapped onto 0..1 by their FEATURES ranges, clipped."""
    values = np.array([features[f.name] for f in FEATURES], dtype=np.float64)
    low = np.array([f.low for f in FEATURES])
    high = np.array([f.high for f in FEATURES])
    return np.clip((values - low) / (high - low), 0.0, 1.0)


def _check_output(out: Path) -> str:
    """The image format from the suffix; UserError for a path that cannot be written."""
    suffix = out.suffix.lower().lstrip(".")
    if suffix not in FORMATS:
        raise UserError(
            f"cannot draw {out}: give a file name ending in "
            + ", ".join(f".{name}" for name in FORMATS)
        )
    if out.is_dir():
        raise UserError(f"cannot draw {out}: it is a folder")
    if not out.parent.is_dir():
        raise UserError(f"cannot draw {out}: folder {out.parent} does not exist")
    return suffix


def radar(results: list[dict], out: Path) -> Path:
    """Draw each result's features ({"image", "features"}, as predict returns) to `out`,
    written atomically; the format follows the suffix (.png, .svg, .pdf, ...)."""
    out = Path(out)
    drawn = [r for r in results if "features" in r]
    if not drawn:
        raise UserError("nothing to plot: no image was answered")
    kind = _check_output(out)
    angles = np.linspace(0, 2 * np.pi, len(FEATURES), endpoint=False)
    # A bare Figure on the Agg canvas: no pyplot state, no display, nothing to close.
    figure = Figure(figsize=(6.5, 6.5))
    FigureCanvasAgg(figure)
    axes = figure.add_subplot(projection="polar")
    axes.set_theta_offset(np.pi / 2)  # the first feature at the top, then clockwise
    axes.set_theta_direction(-1)
    for result in drawn:
        values = scaled(result["features"])
        label = Path(result.get("image", "?")).name
        axes.plot(np.append(angles, angles[0]), np.append(values, values[0]), label=label)
        axes.fill(angles, values, alpha=0.15)
    axes.set_xticks(angles, [_label(f) for f in FEATURES], fontsize=8)
    axes.set_ylim(0, 1)
    axes.set_yticks([0.25, 0.5, 0.75, 1.0], ["", "", "", ""])
    if drawn[0].get("model"):
        axes.set_title(f"model: {drawn[0]['model']}", fontsize=9, pad=18)
    axes.legend(loc="upper right", bbox_to_anchor=(1.3, 1.12), fontsize=8)
    try:
        with replacing(out) as tmp:
            figure.savefig(tmp, format=kind, bbox_inches="tight", dpi=120)
    except OSError as exc:
        raise UserError(f"cannot write {out}: {exc.strerror or exc}") from None
    return out
