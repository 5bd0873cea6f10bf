"""Side by side, interleaved call by call: Model 1 against HuggingFace's
``VivitModel`` and Model 3 (uniform frame sampling) against MMAction2's
``TimeSformer``."""
from typing import Dict, List, Tuple

from ..cases import (Case, hf_vivit_case, timesformer_case, variant_cfg,
                     vivit_case)
from ..measure import load_average, median
from ..report import Report, fmt_load, fmt_num
from ..settings import Context, Settings
from ..timing import paired_ratios, time_cases, utilisation

M1, M3 = 'vivit_mm Model 1', 'vivit_mm Model 3 (uniform)'
TIMESFORMER = 'MMAction2 TimeSformer'
#: HuggingFace's attention implementations and activations compared.
HF_VARIANTS = (('sdpa', 'gelu_fast'), ('sdpa', 'gelu_pytorch_tanh'),
               ('eager', 'gelu_fast'))


def compare_cases(s: Settings, ctx: Context
                  ) -> Tuple[List[Case], List[Tuple[str, str]], dict, dict]:
    """The compared cases, the ``(slow, fast)`` name pairs, and Model 1's
    and Model 3's configs."""
    f, img, batch = s.compare_frames, s.variant_img_size, s.batch
    m1 = variant_cfg('m1', s, f, img)
    m3 = variant_cfg('m3', s, f, img, tokenizer='uniform', tubelet_size=1,
                     drop_path_rate=0.1)
    cases = [vivit_case(M1, m1, batch, ctx.device)]
    for attn, act in HF_VARIANTS:
        cases.append(hf_vivit_case(f'HF VivitModel {attn} {act}', m1, batch,
                                   ctx.device, attn, act))
    cases += [vivit_case(M3, m3, batch, ctx.device),
              timesformer_case(TIMESFORMER, m3, batch, ctx.device)]
    pairs = [(c.name, M1) for c in cases[1:4]] + [(TIMESFORMER, M3)]
    return cases, pairs, m1, m3


def _describe(s: Settings, ctx: Context, m1: dict, m3: dict) -> str:
    f, img = s.compare_frames, s.variant_img_size
    return (f'{f} frames at {img}x{img}, batch {s.batch}, '
            f'{ctx.width_text}. Model 1 and '
            f'HuggingFace: tubelets {m1["tubelet_size"]}x{m1["patch_size"]}'
            f'x{m1["patch_size"]}, CLS token. Model 3 and '
            'TimeSformer: uniform frame sampling (one token per '
            f'{m3["patch_size"]}x{m3["patch_size"]} patch per '
            'frame), stochastic depth 0.1 on both; TimeSformer adds a CLS '
            'token and its temporal_fc. Speed-up = median over rounds of '
            'time(theirs) / time(ours) in the same round.')


def _speed_rows(results: Dict[str, dict], cases: List[Case], s: Settings,
                ctx: Context) -> List[list]:
    rows = []
    for mode, res in results.items():
        t = res['times']
        k = 2 if mode == 'forward' else 6
        for c in cases:
            rows.append([mode, c.name, fmt_num(c.macs / 1e9),
                         f'{s.batch / median(t[c.name]):.2f}',
                         f'{utilisation(t, c.name, k * c.macs, ctx):.0%}',
                         fmt_load(res['load'])])
    return rows


def _speedup_rows(results: Dict[str, dict],
                  pairs: List[Tuple[str, str]]) -> List[list]:
    rows = []
    for mode, res in results.items():
        for slow, fast in pairs:
            r = paired_ratios(res['times'], slow, fast)
            rows.append([mode, f'{fast} vs {slow}', f'{median(r):.2f}x',
                         f'{min(r):.2f}-{max(r):.2f}'])
    return rows


def compare_section(rep: Report, s: Settings, ctx: Context) -> None:
    """``## Side by side``: clips/s, util and paired speed-ups, forward
    (and training unless ``--no-train``)."""
    cases, pairs, m1, m3 = compare_cases(s, ctx)
    results = {}
    for train in ((False, ) if s.no_train else (False, True)):
        load0 = load_average()
        times = time_cases(cases, s, ctx, train)
        results['train' if train else 'forward'] = dict(
            times=times, load=(load0, load_average()))
    rep.data['compare'] = dict(frames=s.compare_frames, results=results,
                               macs={c.name: c.macs for c in cases})
    rep.add('## Side by side (interleaved call by call)', '',
            _describe(s, ctx, m1, m3), '')
    rep.table(['mode', 'model', 'GMACs', 'clips/s', 'util', 'load'],
              _speed_rows(results, cases, s, ctx))
    rows = _speedup_rows(results, pairs)
    rep.data['compare']['speedups'] = rows
    rep.table(['mode', 'pair', 'speed-up (median)', 'range'], rows)
    for c in cases:
        c.model.zero_grad(set_to_none=True)
