"""``torch.compile``'d backbones (forward, eval), with and without
inductor's ``freezing``, against eager."""
import time
from typing import Tuple

import torch

from ..cases import Case, section_cfgs, section_shape, vivit_case
from ..measure import median
from ..report import Report
from ..settings import Context, Settings
from ..timing import time_cases, utilisation
from .amp import rel_err

FREEZING = (False, True)


def compiled_case(eager: Case, freezing: bool) -> Tuple[Case, float, float]:
    """``torch.compile`` of ``eager``'s model, compiled by a first call
    (with inductor's ``freezing``: weights become constants, so linears get
    prepacked oneDNN kernels with bias and activation fused). Returns the
    case, its compile seconds and its relative error against eager."""
    import torch._inductor.config as inductor_config
    name = f'{eager.name} compiled' + (' +freezing' if freezing else '')
    case = Case(name, torch.compile(eager.model), eager.x, macs=eager.macs)
    t0 = time.perf_counter()
    with torch.no_grad(), inductor_config.patch(freezing=freezing):
        out = case.forward()
    seconds = time.perf_counter() - t0
    with torch.no_grad():
        ref = eager.forward()
    return case, seconds, rel_err(out, ref)


def _compile_record(v: str, cfg: dict, s: Settings,
                    ctx: Context) -> Tuple[dict, list]:
    """Compile times, errors, clips/s and util of one backbone: its JSON
    record and table row."""
    eager = vivit_case(v, cfg, s.batch, ctx.device)
    eager.model.eval()
    cases, rec = [eager], dict(variant=v)
    for freezing in FREEZING:
        torch._dynamo.reset()
        case, sec, err = compiled_case(eager, freezing)
        cases.append(case)
        rec[f'compile_s_freezing={freezing}'] = sec
        rec[f'rel_err_freezing={freezing}'] = err
    times = time_cases(cases, s, ctx, train=False)
    row = [v]
    for c in cases:
        rec[f'{c.name} s'] = median(times[c.name])
        rec[f'{c.name} util'] = utilisation(times, c.name, 2 * eager.macs,
                                            ctx)
        row += [f'{s.batch / rec[c.name + " s"]:.2f}',
                f'{rec[c.name + " util"]:.0%}']
    row.append(' / '.join(
        f'{rec[f"compile_s_freezing={f}"]:.0f}' for f in FREEZING))
    row.append(f'{max(rec[f"rel_err_freezing={f}"] for f in FREEZING):.0e}')
    return rec, row


def compile_section(rep: Report, s: Settings, ctx: Context) -> None:
    """``## torch.compile (forward, eval)``: the config's backbone, or
    each variant at ``--compare-frames``."""
    rows, data = [], []
    for v, cfg in section_cfgs(s):
        rec, row = _compile_record(v, cfg, s, ctx)
        data.append(rec)
        rows.append(row)
    torch._dynamo.reset()
    rep.data['compile'] = data
    rep.add('## torch.compile (forward, eval)', '',
            f'{section_shape(s)}, batch {s.batch}. "+freezing": '
            '`torch._inductor.config.freezing = True` (inference only).', '')
    rep.table(['variant', 'eager clips/s', 'eager util',
               'compiled clips/s', 'compiled util',
               '+freezing clips/s', '+freezing util', 'compile s',
               'max rel err'], rows)
