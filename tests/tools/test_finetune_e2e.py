"""Fine-tuning end to end: a class-folder tree of generated videos (three
classes that are not the demo's, one broken file) -> the list tool and its
written config (a child of configs/vivit_m2_synthetic.py) -> tools/train.py
from the committed demo weights with a new 3-way head, ``frozen_stages=2``
and layer-wise lr decay -> demo/demo.py naming the new classes."""
import re
import sys

import torch

from tests.conftest import REPO
from tests.tools.helpers import load_tool, run, write_video

DEMO_WEIGHTS = REPO / 'tests' / 'assets' / 'vivit_m2_synthetic_demo.pth'
CLASSES = ['juggling', 'rowing', 'yawning']  # not the demo's
FROZEN = 2  # the tokeniser, spatial CLS/position table, spatial blocks 0-1
DECAY = 0.5


def _tree(root):
    for label, name in enumerate(CLASSES):
        (root / name).mkdir(parents=True)
        for i in range(3):
            write_video(root / name / f'{name}{i}.mp4', 40, 32, 16,
                        seed=10 * label + i)
    good = (root / 'rowing' / 'rowing0.mp4').read_bytes()
    (root / 'rowing' / 'broken.mp4').write_bytes(good[:len(good) // 3])
    return root


def test_folder_to_finetuned_model_to_named_predictions(tmp_path, capsys):
    videos = _tree(tmp_path / 'videos')
    out = tmp_path / 'lists'
    code = load_tool('tools/data/build_video_lists.py').main([
        str(videos), '--out-dir', str(out), '--val-fraction', '0.3',
        '--config', str(REPO / 'configs' / 'vivit_m2_synthetic.py'),
        '--load-from', str(DEMO_WEIGHTS)])
    assert code == 0
    assert 'rowing/broken.mp4: the file' in capsys.readouterr().out
    assert (out / 'classes.txt').read_text().split() == CLASSES
    config = out / 'finetune.py'

    work = tmp_path / 'work'
    proc = run([sys.executable, str(REPO / 'tools/train.py'), str(config),
                '--work-dir', str(work), '--cfg-options',
                f'model.backbone.frozen_stages={FROZEN}',
                f'layer_decay_rate={DECAY}',
                f'optim_wrapper.paramwise_cfg.layer_decay_rate={DECAY}',
                'train_cfg.max_epochs=1', 'train_dataloader.batch_size=3',
                'train_dataloader.num_workers=0',
                'train_dataloader.persistent_workers=False',
                'val_dataloader.num_workers=0',
                'val_dataloader.persistent_workers=False',
                'default_hooks.logger.interval=1'])
    assert proc.returncode == 0, proc.stderr[-3000:]
    ckpt = work / 'epoch_1.pth'
    saved = torch.load(ckpt, map_location='cpu', weights_only=True)
    start = torch.load(DEMO_WEIGHTS, map_location='cpu',
                       weights_only=True)['state_dict']
    new = saved['state_dict']

    # The backbone came from the demo weights; the head is new (3 classes).
    assert new['cls_head.fc_cls.weight'].shape == (3, 64)
    assert start['cls_head.fc_cls.weight'].shape == (4, 64)
    frozen = [k for k in start if k.startswith((
        'backbone.patch_embed.', 'backbone.layers.0.', 'backbone.layers.1.'))]
    frozen += ['backbone.cls_token', 'backbone.pos_embed']
    for k in frozen:  # bit-identical after training
        assert torch.equal(new[k], start[k]), k
    for prefix in ('backbone.layers.2.', 'backbone.temporal_layers.'):
        changed = [k for k in start if k.startswith(prefix)
                   and not torch.equal(new[k], start[k])]
        assert changed, f'{prefix}* did not train'

    # Layer-wise lr decay in the optimizer the run saved: every group's lr
    # is the head's x DECAY ** (depth below the head) (x the base config's
    # lr_mult 100 for CLS tokens and position tables); no frozen tensor in
    # it.
    groups = saved['optimizer']['param_groups']
    names = {n for g in groups for n in [g['param_name']]}
    assert not names & set(frozen)
    head_lr = {g['lr'] for g in groups
               if g['param_name'].startswith('cls_head.')}
    assert len(head_lr) == 1
    head_lr = head_lr.pop()
    num_layers = 5 + 2  # 3 spatial + 2 temporal blocks
    depths = {}
    for g in groups:
        mult = 100.0 if re.search('cls_token|pos_embed', g['param_name']) \
            else 1.0
        expected = head_lr * mult * DECAY**(num_layers - 1 - g['layer_id'])
        assert abs(g['lr'] - expected) <= 1e-6 * expected, g['param_name']
        depths[g['param_name']] = g['layer_id']
    assert (depths['backbone.layers.2.attn.qkv.weight']
            < depths['backbone.temporal_layers.0.attn.qkv.weight']
            < depths['backbone.temporal_layers.1.attn.qkv.weight']
            < depths['cls_head.fc_cls.weight'])

    # The checkpoint carries the class names; the demo names them.
    assert saved['meta']['dataset_meta']['classes'] == CLASSES
    demo = load_tool('demo/demo.py')
    demo.main([str(videos / 'yawning' / 'yawning0.mp4'), str(config),
               str(ckpt), '--topk', '3', '--device', 'cpu'])
    lines = capsys.readouterr().out.strip().splitlines()[-3:]
    shown = [re.fullmatch(r'\d\. (\w+) \(0\.\d+\)', ln).group(1)
             for ln in lines]
    assert sorted(shown) == CLASSES
