"""A radar chart of a profile against its matches (matplotlib, headless)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from ishan_tools.errors import PlayersError
from ishan_tools.players.data import ATTRIBUTES
from ishan_tools.players.index import Match, Profile


def write_radar(path: Path, profile: Profile, matches: Sequence[Match], *, title: str) -> Path:
    """Draw the six ratings of `profile` and each match on one radar chart; return `path`.

    The image format follows the file's suffix (png, svg, pdf, ...).
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        from matplotlib import pyplot as plt
        from matplotlib.projections.polar import PolarAxes
    except ImportError:
        raise PlayersError("--plot needs matplotlib: pip install 'ishan-tools[players]'") from None
    angles = [2 * math.pi * i / len(ATTRIBUTES) for i in range(len(ATTRIBUTES))]
    closed = [*angles, angles[0]]
    figure = plt.figure(figsize=(7, 7))
    try:
        axes = figure.add_subplot(polar=True)
        assert isinstance(axes, PolarAxes)
        axes.set_theta_offset(math.pi / 2)
        axes.set_theta_direction(-1)
        axes.set_xticks(angles, [name.capitalize() for name in ATTRIBUTES])
        axes.set_ylim(0, 100)
        axes.set_yticks([20, 40, 60, 80], ["20", "40", "60", "80"], color="grey")
        profile_values = [profile.ratings.get(name, 0.0) for name in ATTRIBUTES]
        outline = [*profile_values, profile_values[0]]
        axes.plot(closed, outline, color="black", linewidth=2.5, label=f"profile ({profile.role})")
        axes.fill(closed, outline, color="black", alpha=0.08)
        for match in matches:
            values = [float(str(match.player[name])) for name in ATTRIBUTES]
            label = f"{match.player['short_name']} ({match.score:.4f})"
            axes.plot(closed, [*values, values[0]], linewidth=1.5, label=label)
        axes.legend(loc="upper right", bbox_to_anchor=(1.3, 1.1), fontsize="small")
        axes.set_title(title, pad=24)
        figure.tight_layout()
        figure.savefig(path, dpi=100)
    except (OSError, ValueError) as exc:
        raise PlayersError(f"cannot write the radar chart to {path}: {exc}") from None
    finally:
        plt.close(figure)
    return path
