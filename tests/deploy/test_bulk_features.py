"""tools/misc/extract_features.py keeps its work (vivit_mm/deploy/bulk.py):
progress lines, an unreadable video stops the job naming the file with the
finished videos kept, --resume --skip-bad-videos completes it with the
skipped video recorded, and a run killed with SIGKILL then resumed writes
the features of an uninterrupted run."""
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np

from tests.conftest import REPO
from tests.deploy.test_features import VIDEOS, data, run_tool  # noqa: F401
from tests.tools.helpers import env

TOOL = str(REPO / 'tools' / 'misc' / 'extract_features.py')


def _lines(path, names):
    path.write_text(''.join(f'{n} 0\n' for n in names))
    return path


def _npz(path):
    with np.load(path, allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


def _argv(data, ann, out, *extra):
    return [data['config'], data['ckpt'], ann, '--out', out,
            '--data-prefix', data['root'] / 'videos', *extra]


def test_bad_video_stops_keeping_the_work_then_skip_and_resume(
        data, tmp_path, capsys):
    (data['root'] / 'videos' / 'bad.mp4').write_bytes(b'not a video')
    names = [VIDEOS[0][0], 'bad.mp4', VIDEOS[1][0]]
    ann = _lines(tmp_path / 'list.txt', names)
    out = tmp_path / 'f.npz'
    assert run_tool(_argv(data, ann, out)) == 2
    err = capsys.readouterr().err
    assert 'bad.mp4' in err and '1 finished video(s) are kept in' in err
    assert not out.exists()
    log = (tmp_path / 'f.npz.parts' / 'log.jsonl').read_text().splitlines()
    assert [json.loads(ln)['name'] for ln in log] == [VIDEOS[0][0]]
    # the work is never overwritten without --resume
    assert run_tool(_argv(data, ann, out)) == 2
    assert 'add --resume to continue it' in capsys.readouterr().err
    assert run_tool(_argv(data, ann, out, '--resume',
                          '--skip-bad-videos')) == 3
    cap = capsys.readouterr()
    assert '--resume: 1 of 3 videos already done (0 skipped)' in cap.out
    assert '3/3 videos, ' in cap.err and ' left' in cap.err  # progress
    assert 'skipped bad.mp4: ' in cap.err
    assert '1 of 3 videos skipped' in cap.err
    got = _npz(out)
    assert list(got['names']) == [VIDEOS[0][0], VIDEOS[1][0]]
    assert list(got['skipped']) == ['bad.mp4']
    assert 'bad.mp4' in got['skipped_reasons'][0]
    assert not (tmp_path / 'f.npz.parts').exists()
    # the same features as a run over the two good videos
    good = tmp_path / 'good.npz'
    assert run_tool(_argv(data, _lines(tmp_path / 'good.txt', [
        VIDEOS[0][0], VIDEOS[1][0]]), good)) == 0
    np.testing.assert_array_equal(got['features'],
                                  _npz(good)['features'])


def test_killed_then_resumed_equals_uninterrupted(data, tmp_path):
    """The second video is a FIFO: reading it blocks until the test kills
    the process, so the kill comes after exactly one finished video."""
    videos = data['root'] / 'videos'
    fifo = videos / 'slow.mp4'
    if fifo.exists():
        fifo.unlink()
    os.mkfifo(fifo)
    names = [VIDEOS[0][0], 'slow.mp4', VIDEOS[1][0]]
    ann = _lines(tmp_path / 'list.txt', names)
    out = tmp_path / 'f.npz'
    argv = [sys.executable, TOOL] + [str(a) for a in _argv(data, ann, out)]
    proc = subprocess.Popen(argv, env=env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    log = tmp_path / 'f.npz.parts' / 'log.jsonl'
    deadline = time.time() + 240
    while not (log.exists() and log.read_text().count('\n') == 1):
        assert proc.poll() is None and time.time() < deadline
        time.sleep(0.2)
    time.sleep(0.5)  # now blocked on the FIFO
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL and not out.exists()
    fifo.unlink()
    os.link(videos / VIDEOS[1][0], fifo)  # now a real video
    resumed = subprocess.run(argv + ['--resume'], env=env(),
                             capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert '--resume: 1 of 3 videos already done' in resumed.stdout
    whole = tmp_path / 'whole.npz'
    argv[argv.index(str(out))] = str(whole)
    fresh = subprocess.run(argv, env=env(), capture_output=True, text=True,
                           timeout=300)
    assert fresh.returncode == 0, fresh.stderr[-2000:]
    a, b = _npz(out), _npz(whole)
    assert list(a['names']) == list(b['names']) == names
    np.testing.assert_array_equal(a['features'], b['features'])
    fifo.unlink()
