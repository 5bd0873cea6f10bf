"""demo/demo.py --sliding-window keeps its work: each window is printed and
appended to OUT.windows.jsonl as it is classified (with a progress line),
and --resume continues an interrupted run to the result of an uninterrupted
one."""
import json

import pytest

from tests.tools.test_demo import _tool_args, load_demo


def test_sliding_window_resume_equals_uninterrupted(trained, tmp_path,
                                                    capsys):
    cfg_path, ckpt = _tool_args(trained)
    video = str(trained / 'videos' / 'v3.mp4')  # 14 frames: 4 windows
    argv = [video, cfg_path, ckpt, '--device', 'cpu', '--sliding-window',
            '--stride', '2', '--timeline', str(tmp_path / 't.png')]
    whole = load_demo().main(argv + ['--out-json', str(tmp_path / 'a.json')])
    cap = capsys.readouterr()
    assert '4/4 windows, ' in cap.err and ' left' in cap.err  # progress
    assert not (tmp_path / 'a.json.windows.jsonl').exists()  # assembled
    # An interrupted run: two windows logged, the third line cut by a kill.
    log = tmp_path / 'b.json.windows.jsonl'
    lines = [json.dumps(w) for w in whole['windows'][:2]]
    log.write_text('\n'.join(lines) + '\n' + lines[0][:20])
    with pytest.raises(SystemExit, match='add --resume to continue it'):
        load_demo().main(argv + ['--out-json', str(tmp_path / 'b.json')])
    resumed = load_demo().main(argv + ['--out-json', str(tmp_path / 'b.json'),
                                       '--resume'])
    assert '--resume: 2 windows already done.' in capsys.readouterr().out
    assert resumed['windows'] == whole['windows']
    assert not log.exists()
    with pytest.raises(SystemExit):  # --resume needs --out-json
        load_demo().main(argv + ['--resume'])
