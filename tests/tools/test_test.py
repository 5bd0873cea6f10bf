"""tools/test.py and tools/dist_test.sh (2 gloo processes on the CPU) on the
checkpoint of a tiny tools/train.py run."""
import json
import os
import subprocess
import sys

import mmengine
import numpy as np
import pytest
import torch

from tests.conftest import REPO
from tests.tools.helpers import VIDEOS, env, free_port, run
from vivit_mm.compat import gt_label_of, pred_score_of

TEST = str(REPO / 'tools' / 'test.py')


def _dumped(path):
    preds = mmengine.load(str(path))
    scores = torch.stack([pred_score_of(p) for p in preds])
    labels = [int(gt_label_of(p)) for p in preds]
    return scores, labels


def test_dist_test_on_cpu_matches_single_process(trained):
    cfg, ckpt = str(trained / 'cfg.py'), str(trained / 'wd' / 'epoch_2.pth')
    single = run([sys.executable, TEST, cfg, ckpt, '--work-dir',
                  str(trained / 't1'), '--dump', str(trained / 't1.pkl')])
    assert single.returncode == 0, single.stderr[-3000:]
    env_port = dict(PORT=free_port())
    dist = subprocess.run(
        ['bash', str(REPO / 'tools' / 'dist_test.sh'), cfg, ckpt, '2',
         '--work-dir', str(trained / 't2'), '--dump', str(trained / 't2.pkl')],
        cwd=trained, env={**env(), **env_port, 'PYTHON': sys.executable},
        capture_output=True, text=True, timeout=300)
    assert dist.returncode == 0, dist.stderr[-3000:]
    assert "'backend': 'gloo'" in dist.stdout + dist.stderr
    m1 = json.loads((trained / 't1' / 'test_metrics.json').read_text())
    m2 = json.loads((trained / 't2' / 'test_metrics.json').read_text())
    assert m1 == m2  # exactly the same accuracy
    s1, l1 = _dumped(trained / 't1.pkl')
    s2, l2 = _dumped(trained / 't2.pkl')
    # 5 videos on 2 ranks: the sampler's padding duplicate is dropped and
    # the order restored.
    assert l1 == l2 == [v[3] for v in VIDEOS]
    torch.testing.assert_close(s1, s2, rtol=0, atol=1e-6)
    top1 = float(np.mean(s1.argmax(1).numpy() == np.array(l1)))
    assert m1['acc/top1'] == pytest.approx(top1)


def test_test_tool_compile_matches_eager(trained):
    cfg, ckpt = str(trained / 'cfg.py'), str(trained / 'wd' / 'epoch_2.pth')
    dumps = []
    for name, extra in (('eager', []),
                        ('compiled', ['--compile', '--cfg-options',
                                      'compile.backend=eager'])):
        proc = run([sys.executable, TEST, cfg, ckpt, '--work-dir',
                    str(trained / f'tc_{name}'), '--dump',
                    str(trained / f'tc_{name}.pkl')] + extra)
        assert proc.returncode == 0, proc.stderr[-3000:]
        dumps.append(_dumped(trained / f'tc_{name}.pkl'))
    assert "Backbone compiled: torch.compile({'backend': 'eager'})" \
        in proc.stdout + proc.stderr
    assert dumps[0][1] == dumps[1][1]
    torch.testing.assert_close(dumps[0][0], dumps[1][0], rtol=1e-5,
                               atol=1e-6)


def test_test_tool_refuses_code_running_checkpoint(trained, tmp_path):
    marker = tmp_path / 'pwned'

    class Payload:

        def __reduce__(self):
            return (os.system, (f'touch {marker}', ))

    hostile = tmp_path / 'hostile.pth'
    torch.save(dict(state_dict={}, meta=Payload()), hostile)
    proc = run([sys.executable, TEST, str(trained / 'cfg.py'),
                str(hostile), '--work-dir', str(tmp_path / 'wd')])
    assert proc.returncode != 0
    assert 'Refusing to load checkpoint' in proc.stderr
    assert not marker.exists()
