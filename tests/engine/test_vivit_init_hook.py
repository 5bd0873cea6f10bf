"""``ViViTInitHook`` inside mmengine's Runner: inflates once from an image
ViT when training starts from scratch; never overrides ``load_from`` or
``resume``; all ranks end up with the same weights."""
import copy
import itertools
import multiprocessing as mp
import os
from types import SimpleNamespace
from unittest.mock import patch

import pytest
import torch
from mmaction.registry import HOOKS
from mmaction.structures import ActionDataSample
from mmengine.evaluator import BaseMetric
from mmengine.hooks import Hook
from mmengine.logging import MMLogger
from mmengine.runner import Runner
from mmpretrain.models import VisionTransformer

from vivit_mm.compat import set_gt_label
from vivit_mm.convert.io import safe_load
from vivit_mm.engine import ViViTInitHook
from vivit_mm.models import ViViTM1

ARCH = dict(embed_dims=32, num_layers=2, num_heads=4, feedforward_channels=64)
_RUN_IDS = itertools.count()
BACKBONE = dict(type='ViViTM1', arch=ARCH, img_size=32, num_frames=4,
                patch_size=8, tubelet_size=2, pooling='gap')


@pytest.fixture(scope='module')
def image_ckpt(tmp_path_factory):
    """An mmpretrain ViT with random weights, saved as mmpretrain does."""
    vit = VisionTransformer(arch=ARCH, img_size=32, patch_size=8)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in vit.parameters():
            p.copy_(0.2 * torch.randn(p.shape, generator=g))
    sd = {'backbone.' + k: v for k, v in vit.state_dict().items()}
    sd['head.layers.head.weight'] = torch.randn(7, 32, generator=g)
    path = tmp_path_factory.mktemp('image') / 'vit.pth'
    torch.save({'state_dict': sd, 'meta': {}}, path)
    return str(path), vit.state_dict()


class TinyClips(torch.utils.data.Dataset):
    """Four random 4-frame 32x32 clips, three classes, in memory."""

    def __len__(self):
        return 4

    def __getitem__(self, i):
        g = torch.Generator().manual_seed(i)
        sample = set_gt_label(ActionDataSample(), torch.tensor([i % 3]))
        return dict(inputs=torch.randint(0, 256, (1, 3, 4, 32, 32),
                                         generator=g).float(),
                    data_samples=sample)


class Snapshot(Hook):
    """Records the model's weights just before the first trained iteration
    (after every other hook's ``before_train`` and after load/resume)."""
    priority = 'LOWEST'

    def __init__(self):
        self.state = None

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        if self.state is None:
            self.state = copy.deepcopy(runner.model.state_dict())


class CountClips(BaseMetric):
    """Counts predicted clips (the test only needs Runner.test() to run)."""

    def process(self, data_batch, data_samples):
        self.results += [1 for _ in data_samples]

    def compute_metrics(self, results):
        return {'clips': len(results)}


def make_runner(work_dir, image_path, max_iters=2, **kw):
    snapshot = Snapshot()
    hooks = [dict(type='ViViTInitHook', checkpoint=image_path,
                  tubelet_init='central_frame'),
             dict(type='WeightsOnlyCheckpointHook'), snapshot]
    runner = Runner(
        model=dict(type='Recognizer3D', backbone=dict(BACKBONE),
                   cls_head=dict(type='ViViTHead', num_classes=3,
                                 in_channels=32),
                   data_preprocessor=dict(type='ActionDataPreprocessor',
                                          mean=[127.5] * 3, std=[127.5] * 3,
                                          format_shape='NCTHW')),
        work_dir=str(work_dir),
        train_dataloader=dict(dataset=TinyClips(), batch_size=2,
                              num_workers=0,
                              sampler=dict(type='DefaultSampler',
                                           shuffle=False)),
        train_cfg=dict(by_epoch=False, max_iters=max_iters),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1)),
        custom_hooks=hooks,
        default_hooks=dict(checkpoint=dict(type='CheckpointHook',
                                           interval=2, by_epoch=False),
                           logger=dict(type='LoggerHook', interval=1)),
        default_scope='mmaction',
        randomness=dict(seed=0),
        log_level='WARNING',
        experiment_name=f'vivit_init_hook_{next(_RUN_IDS)}',
        **kw)
    hook = next(h for h in runner.hooks if isinstance(h, ViViTInitHook))
    return runner, hook, snapshot


def image_key(key):
    """Backbone key of ours -> mmpretrain key (for the blocks)."""
    for ours, theirs in (('norm1', 'ln1'), ('norm2', 'ln2'),
                         ('mlp.fc1', 'ffn.layers.0.0'),
                         ('mlp.fc2', 'ffn.layers.1')):
        key = key.replace(ours, theirs)
    return key


def test_trains_from_an_inflated_start(tmp_path, image_ckpt):
    path, image = image_ckpt
    runner, hook, snapshot = make_runner(tmp_path, path)
    runner.train()
    start = snapshot.state
    # Before the first iteration the backbone holds the image weights.
    for i in range(2):
        for k in ('norm1.weight', 'attn.qkv.weight', 'mlp.fc2.bias'):
            assert torch.equal(start[f'backbone.layers.{i}.{k}'],
                               image[image_key(f'layers.{i}.{k}')])
    assert torch.equal(start['backbone.pos_embed'],
                       image['pos_embed'][:, 1:].repeat(1, 2, 1))
    w = start['backbone.patch_embed.projection.weight']
    assert torch.equal(w[:, :, 1], image['patch_embed.projection.weight'])
    assert not w[:, :, 0].any()
    assert hook.report is not None
    assert 'head.layers.head.weight' in hook.report.unused
    # ... and training moved it from there.
    end = runner.model.state_dict()
    assert not torch.equal(end['backbone.layers.0.attn.qkv.weight'],
                           start['backbone.layers.0.attn.qkv.weight'])
    assert runner.iter == 2
    assert torch.isfinite(
        torch.tensor(runner.message_hub.get_scalar('train/loss').current()))


def _distinct_checkpoint(tmp_path):
    """A recognizer checkpoint whose backbone is nothing like the image."""
    model = ViViTM1(**{k: v for k, v in BACKBONE.items() if k != 'type'})
    sd = {f'backbone.{k}': torch.full_like(v, 0.5)
          for k, v in model.state_dict().items()}
    sd['cls_head.fc_cls.weight'] = torch.full((3, 32), 0.25)
    sd['cls_head.fc_cls.bias'] = torch.zeros(3)
    path = tmp_path / 'restored.pth'
    torch.save({'state_dict': sd, 'meta': {}}, path)
    return str(path), sd


def test_load_from_wins(tmp_path, image_ckpt):
    restored_path, restored = _distinct_checkpoint(tmp_path)
    runner, hook, snapshot = make_runner(tmp_path / 'run', image_ckpt[0],
                                         max_iters=1,
                                         load_from=restored_path)
    runner.train()
    assert hook.report is None  # skipped
    for k, v in restored.items():
        assert torch.equal(snapshot.state[k], v), k


def test_resume_wins(tmp_path, image_ckpt):
    path = image_ckpt[0]
    first, _, _ = make_runner(tmp_path, path, max_iters=2)
    first.train()  # inflates, trains, saves iter_2.pth
    saved = safe_load(str(tmp_path / 'iter_2.pth'))['state_dict']
    runner, hook, snapshot = make_runner(tmp_path, path, max_iters=3,
                                         resume=True)
    runner.train()
    assert hook.report is None
    assert runner.iter == 3
    for k, v in saved.items():
        assert torch.equal(snapshot.state[k], v), k
    # The resumed weights are trained ones, not a fresh inflation.
    assert not torch.equal(saved['backbone.layers.0.attn.qkv.weight'],
                           image_ckpt[1]['layers.0.attn.qkv.weight'])


def test_auto_resume_without_a_checkpoint_inflates(tmp_path, image_ckpt):
    runner, hook, snapshot = make_runner(tmp_path, image_ckpt[0],
                                         max_iters=1, resume=True)
    runner.train()
    assert hook.report is not None
    assert torch.equal(snapshot.state['backbone.layers.0.ln1.weight'
                                      .replace('ln1', 'norm1')],
                       image_ckpt[1]['layers.0.ln1.weight'])


def test_runner_test_needs_no_image_checkpoint(tmp_path):
    restored_path, restored = _distinct_checkpoint(tmp_path)
    runner, hook, _ = make_runner(
        tmp_path / 'run', str(tmp_path / 'absent.pth'),
        load_from=restored_path,
        test_dataloader=dict(dataset=TinyClips(), batch_size=2,
                             num_workers=0,
                             sampler=dict(type='DefaultSampler',
                                          shuffle=False)),
        test_evaluator=[CountClips()], test_cfg=dict(type='TestLoop'))
    assert runner.test() == {'clips': 4}
    assert hook.report is None
    assert torch.equal(runner.model.state_dict()['backbone.pos_embed'],
                       restored['backbone.pos_embed'])


# -------------------------------------------------------------- arguments
def test_missing_checkpoint_warns_when_built_and_fails_training(
        tmp_path, image_ckpt):
    log_file = tmp_path / 'hook.log'
    logger = MMLogger.get_instance('vivit_hook_missing',
                                   log_file=str(log_file))
    with patch.object(MMLogger, 'get_current_instance', return_value=logger):
        hook = HOOKS.build(dict(type='ViViTInitHook',
                                checkpoint=str(tmp_path / 'nope.pth')))
    assert 'nope.pth' in log_file.read_text()
    model = torch.nn.Module()
    model.backbone = ViViTM1(**{k: v for k, v in BACKBONE.items()
                                if k != 'type'})
    runner = SimpleNamespace(model=model, logger=logger)
    with pytest.raises(FileNotFoundError, match='nothing is fetched'):
        hook.before_train(runner)
    # Not needed when the Runner restored weights (test, resume, load_from):
    # the Runner then calls after_load_checkpoint.
    restored = HOOKS.build(dict(type='ViViTInitHook',
                                checkpoint=str(tmp_path / 'nope.pth')))
    restored.after_load_checkpoint(runner, {})
    restored.before_train(runner)
    assert restored.report is None


def test_arguments_checked_when_built(tmp_path, image_ckpt):
    with pytest.raises(ValueError, match='tubelet_init must be one of'):
        ViViTInitHook(image_ckpt[0], tubelet_init='inflate')
    with pytest.raises(TypeError, match='file path'):
        ViViTInitHook({'pos_embed': torch.zeros(1)})
    hook = ViViTInitHook(image_ckpt[0], module='neck')
    runner = SimpleNamespace(model=torch.nn.Module(),
                             logger=MMLogger.get_current_instance())
    with pytest.raises(ValueError, match="no 'neck'"):
        hook.before_train(runner)
    runner.model.backbone = torch.nn.Linear(2, 2)
    with pytest.raises(TypeError, match='not a ViViT backbone'):
        ViViTInitHook(image_ckpt[0]).before_train(runner)


# ------------------------------------------------------------ distributed
def _rank_worker(rank, world_size, init_file, image_path, out_dir):
    import torch.distributed as dist
    from mmengine.model import MMDistributedDataParallel
    torch.set_num_threads(1)
    dist.init_process_group('gloo', init_method=f'file://{init_file}',
                           rank=rank, world_size=world_size)
    try:
        model = torch.nn.Module()
        model.backbone = ViViTM1(**{k: v for k, v in BACKBONE.items()
                                    if k != 'type'})
        ddp = MMDistributedDataParallel(module=model)
        # Ranks disagree before the hook (e.g. a rank-dependent seed); the
        # part the image lacks stays "random" with tubelet_init='random'.
        torch.manual_seed(100 + rank)
        model.backbone.init_weights()
        runner = SimpleNamespace(model=ddp,
                                 logger=MMLogger.get_current_instance())
        ViViTInitHook(image_path, tubelet_init='random').before_train(runner)
        torch.save(model.backbone.state_dict(),
                   os.path.join(out_dir, f'rank{rank}.pth'))
    finally:
        dist.destroy_process_group()


def test_ddp_ranks_end_identical(tmp_path, image_ckpt):
    ctx = mp.get_context('fork')
    procs = [ctx.Process(target=_rank_worker,
                         args=(r, 2, str(tmp_path / 'init'), image_ckpt[0],
                               str(tmp_path))) for r in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0]
    r0 = torch.load(tmp_path / 'rank0.pth')
    r1 = torch.load(tmp_path / 'rank1.pth')
    for k in r0:
        assert torch.equal(r0[k], r1[k]), k
    assert torch.equal(r0['layers.1.attn.qkv.weight'],
                       image_ckpt[1]['layers.1.attn.qkv.weight'])


def test_init_hook_refuses_hostile_checkpoint(tmp_path):
    """The image checkpoint is read without running pickled code."""
    from mmaction.registry import MODELS

    from tests.convert.conftest import WHY, write_hostile_checkpoint
    marker = tmp_path / 'pwned'
    path = write_hostile_checkpoint(tmp_path / 'hostile.pth', marker)
    hook = ViViTInitHook(str(path))
    model = torch.nn.Module()
    model.backbone = MODELS.build(dict(
        type='ViViTM1', img_size=32, num_frames=4, patch_size=8,
        arch=dict(embed_dims=32, num_layers=1, num_heads=4,
                  feedforward_channels=64)))
    runner = SimpleNamespace(model=model,
                             logger=MMLogger.get_current_instance())
    with pytest.raises(ValueError, match=f'Refusing to load.*{WHY}'):
        hook.before_train(runner)
    assert not marker.exists()
