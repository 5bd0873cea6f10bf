"""The variants (or a config's backbone) against frames: speed,
utilisation, activation and step-peak memory, how they grow, and Model 1's
activation memory with explicit attention."""
import math
from typing import Dict, List, Optional

from ..cases import Case, variant_cfg, vivit_case
from ..measure import load_average, median
from ..report import Report, fmt_bytes, fmt_load, fmt_num
from ..settings import Context, Settings
from ..timing import activation_bytes, peak_memory, time_cases, utilisation


def _record(c: Case, frames: int, fwd: dict, trn: Optional[dict],
            load: tuple, s: Settings, ctx: Context) -> dict:
    """The JSON record of one swept case."""
    f_t = median(fwd[c.name])
    rec = dict(name=c.name, frames=frames, batch=s.batch,
               gmacs=c.macs / 1e9, fwd_s=f_t, fwd_clips_s=s.batch / f_t,
               fwd_util=utilisation(fwd, c.name, 2 * c.macs, ctx),
               act_bytes=activation_bytes(c), load=load)
    if trn is not None:
        t_t = median(trn[c.name])
        rec.update(train_s=t_t, train_clips_s=s.batch / t_t,
                   train_util=utilisation(trn, c.name, 6 * c.macs, ctx),
                   peak_bytes=peak_memory(c, s, ctx))
    return rec


def _row(r: dict) -> list:
    trained = 'train_s' in r
    return [r['name'], r['frames'], fmt_num(r['gmacs']),
            f'{r["fwd_clips_s"]:.2f}', f'{r["fwd_util"]:.0%}',
            f'{r["train_clips_s"]:.2f}' if trained else '-',
            f'{r["train_util"]:.0%}' if trained else '-',
            fmt_bytes(r['act_bytes']), fmt_bytes(r.get('peak_bytes')),
            fmt_load(r['load'])]


def sweep_section(rep: Report, cases_by_frames: Dict[int, List[Case]],
                  s: Settings, ctx: Context) -> List[dict]:
    """``## Variants against frames`` and the growth table; frees each
    frame count's models once measured.

    Returns:
        list[dict]: The ``sweep`` records.
    """
    records = []
    for frames, cases in cases_by_frames.items():
        load0 = load_average()
        fwd = time_cases(cases, s, ctx, train=False)
        trn = None if s.no_train else time_cases(cases, s, ctx, train=True)
        load = (load0, load_average())
        for c in cases:
            records.append(_record(c, frames, fwd, trn, load, s, ctx))
            c.model.zero_grad(set_to_none=True)
        del cases[:]  # free the models before the next frame count
    rep.data['sweep'] = records
    mem_name = ('peak alloc MiB' if ctx.device.type == 'cuda'
                else 'step peak RSS MiB')
    rep.add('## Variants against frames', '',
            f'Batch {s.batch}, {ctx.shape_text}, '
            f'{ctx.width_text}. "util" = achieved '
            'FLOP/s / matrix-multiply rate (forward: 2 x MACs; '
            'forward+backward: 6 x MACs). Activation memory = bytes saved '
            'for backward. Step peak: peak memory growth of one training '
            'step (activations, gradients, temporaries; on CPU the peak '
            'RSS growth in a fresh process).', '')
    rep.table(['variant', 'frames', 'GMACs', 'fwd clips/s', 'fwd util',
               'train clips/s', 'train util', 'activations MiB', mem_name,
               'load'], [_row(r) for r in records])
    growth_table(rep, records)
    return records


def _growth_row(name: str, lo: dict, hi: dict) -> list:
    k = math.log(hi['frames'] / lo['frames'])

    def slope(key):
        return math.log(hi[key] / lo[key]) / k

    return [name, f'{lo["frames"]}->{hi["frames"]}',
            f'{slope("gmacs"):.2f}', f'{slope("fwd_s"):.2f}',
            f'{slope("act_bytes"):.2f}',
            fmt_bytes((hi['act_bytes'] - lo['act_bytes']) /
                      (hi['frames'] - lo['frames']))]


def growth_table(rep: Report, records: List[dict]) -> None:
    """How each variant's cost grows with frames: log-log slope between the
    smallest and largest frame count (1 = linear, 2 = quadratic)."""
    rows = []
    for name in sorted({r['name'] for r in records}):
        rs = sorted((r for r in records if r['name'] == name),
                    key=lambda r: r['frames'])
        if len(rs) >= 2:
            rows.append(_growth_row(name, rs[0], rs[-1]))
    if rows:
        rep.data['growth'] = rows
        rep.add('Growth with frames (log-log slope: 1 = linear, 2 = '
                'quadratic):', '')
        rep.table(['variant', 'frames', 'MACs slope', 'fwd time slope',
                   'activation slope', 'activation MiB / frame'], rows)


def explicit_memory_section(rep: Report, s: Settings, ctx: Context) -> None:
    """Model 1's activation memory with the explicit (non-fused) attention
    that materialises the N x N matrices, for reference."""
    rows, data = [], []
    for frames in s.frames:
        for fused in (True, False):
            cfg = variant_cfg('m1', s, frames, s.img_size, fused_attn=fused)
            c = vivit_case('m1', cfg, s.batch, ctx.device)
            data.append(dict(frames=frames, fused=fused,
                             act_bytes=activation_bytes(c)))
            del c
        rows.append([frames, fmt_bytes(data[-2]['act_bytes']),
                     fmt_bytes(data[-1]['act_bytes'])])
    rep.data['m1_attention_memory'] = data
    rep.add('### Model 1 activation memory: fused SDPA vs explicit '
            'softmax(QK^T)V', '')
    rep.table(['frames', 'fused MiB (default)', 'explicit MiB'], rows)
