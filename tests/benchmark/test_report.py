"""The benchmark's markdown/JSON report, number formats and plot."""
import json

import pytest

from vivit_bench.report import (MiB, Report, fmt_bytes, fmt_load,
                                       fmt_num)


def test_formats():
    assert [fmt_num(x) for x in (1234.5, 123.4, 12.345, 0.01234)] == [
        '1234', '123', '12.3', '0.0123']
    assert fmt_bytes(None) == '-' and fmt_bytes(3 * MiB / 2) == '1.5'
    assert fmt_load((0.44, 1.04)) == '0.4/1.0'


def test_report_table_and_write(tmp_path, capsys):
    rep = Report()
    rep.add('# title', '')
    rep.table(['a', 'b'], [[1, 'x'], [2.5, None]])
    rep.data['x'] = dict(t=(1, 2), obj=object)
    assert rep.lines == ['# title', '', '| a | b |', '|---|---|',
                         '| 1 | x |', '| 2.5 | None |', '']
    assert '| a | b |' in capsys.readouterr().out
    rep.write(tmp_path / 'r.md', tmp_path / 'r.json')
    assert (tmp_path / 'r.md').read_text() == '\n'.join(rep.lines) + '\n'
    data = json.loads((tmp_path / 'r.json').read_text())
    assert data['x']['t'] == [1, 2] and 'object' in data['x']['obj']


def test_plot_from_run_data(tmp_path):
    pytest.importorskip('matplotlib')
    from vivit_bench.plot import plot
    sweep = [dict(name=n, frames=f, fwd_clips_s=10 / f, act_bytes=f * MiB)
             for n in ('m1', 'm3') for f in (2, 4)]
    memory = [dict(frames=f, fused=fused, act_bytes=2 * f * MiB)
              for f in (2, 4) for fused in (True, False)]
    plot(dict(sweep=sweep, m1_attention_memory=memory, title='tiny'),
         tmp_path / 'p.png')
    assert (tmp_path / 'p.png').read_bytes()[:4] == b'\x89PNG'
