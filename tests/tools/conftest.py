"""Shared by the tool tests: tiny mp4 videos, a tiny version of the K400
Model 2 config that reads them, and one 2-epoch ``tools/train.py`` run."""
import os
import sys

import pytest

from tests.conftest import REPO
from tests.tools.helpers import VIDEOS, run, tiny_config, write_video


@pytest.fixture(scope='session')
def trained(tmp_path_factory):
    """Videos, the tiny config and a 2-epoch run of tools/train.py."""
    ws = tmp_path_factory.mktemp('tools')
    data = ws / 'videos'
    data.mkdir()
    lines = []
    for i, (w, h, n, label) in enumerate(VIDEOS):
        write_video(data / f'v{i}.mp4', w, h, n, seed=i)
        lines.append(f'v{i}.mp4 {label}')
    (data / 'list.txt').write_text('\n'.join(lines) + '\n')
    cfg_path = ws / 'cfg.py'
    tiny_config(str(data)).dump(str(cfg_path))
    proc = run([sys.executable, str(REPO / 'tools/train.py'), str(cfg_path),
                '--work-dir', str(ws / 'wd')])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert os.path.isfile(ws / 'wd' / 'epoch_2.pth')
    return ws
