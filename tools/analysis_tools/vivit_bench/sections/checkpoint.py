"""Activation checkpointing (``with_cp``) of Model 1: activation memory,
step peak and training speed with and without it."""
from ..cases import variant_cfg, vivit_case
from ..measure import median
from ..report import Report, fmt_bytes
from ..settings import Context, Settings
from ..timing import activation_bytes, peak_memory, time_cases


def checkpoint_section(rep: Report, s: Settings, ctx: Context) -> None:
    """``## Activation checkpointing (Model 1)`` at ``--cp-frames`` x
    ``--cp-img-size``."""
    rows, data, cases = [], {}, []
    for cp in (False, True):
        cfg = variant_cfg('m1', s, s.cp_frames, s.cp_img_size, with_cp=cp)
        c = vivit_case(f'Model 1 with_cp={cp}', cfg, s.batch, ctx.device)
        data[cp] = dict(act_bytes=activation_bytes(c),
                        peak_bytes=peak_memory(c, s, ctx))
        cases.append(c)
    times = time_cases(cases, s, ctx, train=True)
    for cp, c in zip((False, True), cases):
        data[cp]['train_s'] = median(times[c.name])
        rows.append([cp, fmt_bytes(data[cp]['act_bytes']),
                     fmt_bytes(data[cp]['peak_bytes']),
                     f'{s.batch / data[cp]["train_s"]:.2f}'])
    ratio = data[True]['act_bytes'] / data[False]['act_bytes']
    rep.data['checkpoint'] = dict(frames=s.cp_frames, img_size=s.cp_img_size,
                                  results={str(k): v
                                           for k, v in data.items()},
                                  act_ratio=ratio)
    rep.add('## Activation checkpointing (Model 1)', '',
            f'{s.cp_frames} frames at {s.cp_img_size}x'
            f'{s.cp_img_size}, batch {s.batch}, {s.layers} layers.', '')
    rep.table(['with_cp', 'activations MiB', 'step peak MiB',
               'train clips/s'], rows)
    rep.add(f'with_cp keeps **{ratio:.1%}** of the activation memory; '
            f'training step time x'
            f'{data[True]["train_s"] / data[False]["train_s"]:.2f}.', '')
