"""The benchmark's plot (``benchmark.png``) from a run's JSON data
(needs matplotlib)."""
from pathlib import Path

from .report import MiB

#: ``(sweep record key, panel title)``, one panel each where present.
PANELS = (('fwd_clips_s', 'forward clips/s'),
          ('train_clips_s', 'forward+backward clips/s'),
          ('act_bytes', 'training activations (MiB)'))


def plot(data: dict, path: Path) -> None:
    """Throughput and memory against frames from a run's JSON data (the
    ``sweep`` records, and Model 1 with explicit attention when present).

    Args:
        data (dict): The run's JSON data (``benchmark.json``).
        path (Path): Where to write the PNG.
    """
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    records = data['sweep']
    keys = [k for k in PANELS if any(k[0] in r for r in records)]
    fig, axes = plt.subplots(1, len(keys), figsize=(4.2 * len(keys), 3.6),
                             squeeze=False)
    for ax, (key, label) in zip(axes[0], keys):
        _panel(ax, data, key, label)
    axes[0][0].legend(fontsize=7)
    fig.suptitle(data.get('title', ''), fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def _panel(ax, data: dict, key: str, label: str) -> None:
    """One log-log panel: ``key`` of every swept model against frames."""
    from matplotlib.ticker import LogLocator, NullFormatter, ScalarFormatter

    from .cases import variant_label
    records = data['sweep']
    for name in sorted({r['name'] for r in records}):
        rs = sorted((r for r in records if r['name'] == name),
                    key=lambda r: r['frames'])
        ys = [r[key] / (MiB if key == 'act_bytes' else 1) for r in rs]
        ax.plot([r['frames'] for r in rs], ys, marker='o',
                label=variant_label(name))
    explicit = [r for r in data.get('m1_attention_memory', [])
                if not r['fused']]
    if key == 'act_bytes' and explicit:
        ax.plot([r['frames'] for r in explicit],
                [r['act_bytes'] / MiB for r in explicit], 'k--',
                marker='x', label='Model 1, explicit attention')
        ax.legend(fontsize=7)
    ax.set_xscale('log', base=2)
    ax.set_yscale('log')
    ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_major_formatter(ScalarFormatter())
        axis.set_minor_formatter(NullFormatter())
    ax.set_xticks(sorted({r['frames'] for r in records}))
    ax.set_xlabel('frames')
    ax.set_title(label, fontsize=10)
    ax.grid(True, which='both', alpha=0.3)


__all__ = ['plot']
