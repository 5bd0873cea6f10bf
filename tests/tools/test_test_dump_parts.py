"""tools/test.py --dump keeps its predictions as they come
(vivit_mm/engine/streaming_dump.py): a run stopped by an unreadable video
leaves the predictions it made in FILE.parts; a complete run writes the
.pkl and removes the parts."""
import os
import sys

import mmengine
import torch

from tests.conftest import REPO
from tests.tools.helpers import run
from vivit_mm.engine import read_parts

TEST = str(REPO / 'tools' / 'test.py')


def _test(trained, tmp_path, names, dump):
    folder = tmp_path / 'videos'
    folder.mkdir(exist_ok=True)
    for name in names:
        if name != 'bad.mp4' and not (folder / name).exists():
            os.symlink(trained / 'videos' / name, folder / name)
    (folder / 'bad.mp4').write_bytes(b'not a video')
    ann = tmp_path / f'{dump.stem}.txt'
    ann.write_text(''.join(f'{n} 0\n' for n in names))
    return run([sys.executable, TEST, str(trained / 'cfg.py'),
                str(trained / 'wd' / 'epoch_2.pth'), '--work-dir',
                str(tmp_path / 'wd'), '--dump', str(dump), '--cfg-options',
                f'test_dataloader.dataset.ann_file={ann}',
                f'test_dataloader.dataset.data_prefix.video={folder}',
                'test_dataloader.batch_size=1'])


def _scores(p):
    """MMAction2 1.1's ``pred_scores.item`` or 1.2's ``pred_score``."""
    return p['pred_scores']['item'] if 'pred_scores' in p \
        else p['pred_score']


def test_stopped_run_keeps_its_predictions(trained, tmp_path):
    stopped = _test(trained, tmp_path, ['v0.mp4', 'v1.mp4', 'bad.mp4',
                                        'v3.mp4'], tmp_path / 'a.pkl')
    assert stopped.returncode != 0 and 'bad.mp4' in stopped.stderr
    assert not (tmp_path / 'a.pkl').exists()
    kept = read_parts(str(tmp_path / 'a.pkl.parts'))
    full = _test(trained, tmp_path, ['v0.mp4', 'v1.mp4'], tmp_path / 'b.pkl')
    assert full.returncode == 0, full.stderr[-2000:]
    assert not (tmp_path / 'b.pkl.parts').exists()
    whole = mmengine.load(str(tmp_path / 'b.pkl'))
    assert len(kept) == len(whole) == 2
    for a, b in zip(kept, whole):
        torch.testing.assert_close(_scores(a), _scores(b), rtol=0, atol=0)
