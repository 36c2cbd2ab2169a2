"""`--plot FILE`: every policy's cost-quality curve on one PNG (needs the `bench` extra: matplotlib)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from handoffs.errors import ConfigError
from handoffs_bench.metric import upper_hull

if TYPE_CHECKING:
    from handoffs_bench.replay import Report

__all__ = ["plot_available", "plot_report"]

_SINGLE = {"always-frontier", "always-cheapest"}
_HIDDEN = {"handoffs"}  # the same curve as the policy it names


def plot_available() -> None:
    """Raise a one-line `ConfigError` when matplotlib is not installed."""
    try:
        import matplotlib  # noqa: F401  # pyright: ignore[reportUnusedImport]
    except ImportError:
        raise ConfigError(
            "--plot needs matplotlib: pip install 'handoffs[bench]' (or matplotlib)"
        ) from None


def plot_report(report: Report, path: Path) -> None:
    """Draw each policy's upper hull of (cost / frontier, accuracy) and its chosen point."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # matplotlib's annotations leave keyword arguments untyped: use the figure and axes as Any
    fig, ax = cast(tuple[Any, Any], plt.subplots(figsize=(9, 6), dpi=120))
    try:
        for p in report.policies:
            if p.name in _HIDDEN or not p.curve:
                continue
            if p.name in _SINGLE or p.name.startswith(("best-single", "zero-router")):
                continue
            hull = upper_hull(list(p.curve))
            style = ":" if p.name in ("oracle", "random-50%") else "-"
            (line,) = ax.plot(
                [c for c, _ in hull], [q for _, q in hull], style, marker=".", label=p.name
            )
            ax.plot([p.cost_fraction], [p.accuracy], "o", color=line.get_color(), markersize=8)
        singles = next((p.curve for p in report.policies if p.name == "always-frontier"), ())
        if singles:
            hull = upper_hull(list(singles))
            ax.plot([c for c, _ in singles], [q for _, q in singles], "kx", label="single models")
            ax.plot(
                [c for c, _ in hull], [q for _, q in hull], "k--", lw=1, label="zero router (hull)"
            )
        ax.axhline(report.frontier_accuracy, color="grey", lw=0.8, ls="--")
        ax.axvline(0.25, color="grey", lw=0.8, ls=":")
        ax.set_xlabel(f"cost / always-{report.frontier}")
        ax.set_ylabel("accuracy")
        ax.set_title(f"{report.dataset}: {report.protocol} (dots: chosen operating points)")
        ax.set_xlim(left=0)
        ax.legend(loc="lower right", fontsize=8)
        ax.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(path)
    finally:
        plt.close(fig)
