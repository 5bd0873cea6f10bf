"""Toy models, data and Runners shared by the engine tests (imported as
``from tests.engine.conftest import ...``).

Every Runner gets a unique ``experiment_name``: mmengine shares the
MessageHub of Runners whose (timestamp) names coincide.
"""
import glob
import itertools
import os
import random

import numpy as np
import torch
from mmengine.hooks import Hook
from mmengine.model import BaseModel
from mmengine.runner import Runner
from torch import nn
from torch.utils.data import Dataset

_RUN_IDS = itertools.count()


def experiment_name(prefix: str) -> str:
    """A name no other Runner of this session (or xdist worker) uses."""
    return f'{prefix}_{os.getpid()}_{next(_RUN_IDS)}'


def read_logs(work_dir) -> str:
    """All ``*.log`` files below ``work_dir``, concatenated."""
    return ''.join(open(f).read() for f in sorted(glob.glob(
        os.path.join(str(work_dir), '**', '*.log'), recursive=True)))


def close_workers(runner) -> None:
    """Stop persistent DataLoader workers now (garbage collection takes 5 s
    each)."""
    iterator = getattr(runner.train_dataloader, '_iterator', None)
    if iterator is not None:
        iterator._shutdown_workers()


# --------------------------------------------------------------------------
# Resume and checkpoint tests: a model and data with random draws.
class DropoutToy(BaseModel):
    """Linear classifier behind dropout (the model's own random draws)."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 3)
        self.drop = nn.Dropout(0.5)

    def forward(self, x, y, mode='tensor'):
        out = self.fc(self.drop(x))
        if mode == 'loss':
            return dict(loss=nn.functional.cross_entropy(out, y))
        return list(zip(out.argmax(1), y))


class RandomData(Dataset):
    """10 samples with "augmentation" from all three global generators."""

    def __len__(self):
        return 10

    def __getitem__(self, i):
        g = torch.Generator().manual_seed(i)
        noise = np.random.rand() + random.random() + torch.rand(1).item()
        return dict(x=torch.randn(4, generator=g) + noise,
                    y=torch.tensor(i % 3))


#: What a reliable run names: the shipped configs' hooks, sampler and
#: data set wrapper (configs/_base_/default_runtime.py, dataset bases).
RELIABLE_HOOKS = (dict(type='WeightsOnlyCheckpointHook'),
                  dict(type='ExactResumeHook'))


def toy_runner(work_dir, epochs, workers=0, persistent=False,
               checkpoint=None, seed=0, reproducible=True,
               hooks=RELIABLE_HOOKS, **kw) -> Runner:
    """A Runner on :class:`DropoutToy` and :class:`RandomData` (batch 3: 4
    iterations per epoch) with ``ResumableSampler``, ``ReproducibleDataset``
    (unless ``reproducible=False``), ``AtomicCheckpointHook`` every epoch
    (or ``checkpoint``) and ``hooks``."""
    torch.manual_seed(123)  # the same initial weights in every run
    kw.setdefault('log_level', 'WARNING')
    dataset = RandomData()
    if reproducible:
        dataset = dict(type='ReproducibleDataset', dataset=dataset)
    loader = dict(dataset=dataset, batch_size=3, num_workers=workers,
                  persistent_workers=persistent,
                  sampler=dict(type='ResumableSampler', shuffle=True),
                  collate_fn=dict(type='default_collate'))
    return Runner(
        DropoutToy(), work_dir=str(work_dir), train_dataloader=loader,
        train_cfg=dict(by_epoch=True, max_epochs=epochs),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1, momentum=0.9)),
        default_hooks=dict(checkpoint=checkpoint or dict(
            type='AtomicCheckpointHook', interval=1)),
        custom_hooks=[dict(h) for h in hooks],
        randomness=dict(seed=seed), default_scope='mmaction',
        experiment_name=experiment_name('toy'), **kw)


# --------------------------------------------------------------------------
# Loss tests: a model whose loss a sample can make NaN or infinite.
class ScaledLossModel(BaseModel):
    """Linear classifier; a sample's ``scale`` multiplies its loss (nan or
    inf make the batch loss non-finite, 0 makes it contribute nothing).
    ``dtypes`` records the output dtype of every forward."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 2)
        self.dtypes = []

    def forward(self, x, y, scale, mode='tensor'):
        out = self.fc(x)
        self.dtypes.append(out.dtype)
        if mode == 'loss':
            per = nn.functional.cross_entropy(out.float(), y,
                                              reduction='none')
            return dict(loss_cls=(per * scale).mean(),
                        acc=(out.argmax(1) == y).float().mean())
        return list(zip(out.argmax(1), y))


class ScaledData(Dataset):
    """8 samples in order (batch 2: 4 iterations per epoch); ``scales``
    maps sample index -> loss multiplier."""

    def __init__(self, scales=None):
        self.scales = dict(scales or {})

    def __len__(self):
        return 8

    def __getitem__(self, i):
        g = torch.Generator().manual_seed(i)
        return dict(x=torch.randn(3, generator=g), y=torch.tensor(i % 2),
                    scale=torch.tensor(float(self.scales.get(i, 1.0))))


class RecordWeights(Hook):
    """Records fc.weight after every iteration."""

    def __init__(self):
        self.after = []

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None):
        model = getattr(runner.model, 'module', runner.model)  # DDP
        self.after.append(model.fc.weight.detach().clone())


def loss_runner(work_dir, scales, hook=None, epochs=2, optimizer=None,
                wrapper=None, **kw):
    """A Runner on :class:`ScaledLossModel`; returns (runner, the
    :class:`RecordWeights` hook). ``hook``: one more hook config."""
    torch.manual_seed(0)
    weights = RecordWeights()
    hooks = [weights, dict(type='WeightsOnlyCheckpointHook')] + (
        [hook] if hook is not None else [])
    optim = dict(type=wrapper or 'OptimWrapper', optimizer=optimizer or dict(
        type='SGD', lr=0.1, momentum=0.9))
    runner = Runner(
        ScaledLossModel(), work_dir=str(work_dir),
        train_cfg=dict(by_epoch=True, max_epochs=epochs),
        train_dataloader=dict(dataset=ScaledData(scales), batch_size=2,
                              sampler=dict(type='DefaultSampler',
                                           shuffle=False),
                              collate_fn=dict(type='default_collate')),
        optim_wrapper=optim, custom_hooks=hooks, default_scope='mmaction',
        default_hooks=dict(logger=dict(type='LoggerHook', interval=1),
                           checkpoint=dict(type='CheckpointHook',
                                           interval=1)),
        randomness=dict(seed=0), log_level='INFO',
        experiment_name=experiment_name('nonfinite'), **kw)
    return runner, weights


def pickle_globals(path) -> set:
    """All GLOBAL names in a torch zip checkpoint, read from the pickle
    opcodes (nothing is unpickled)."""
    import pickletools
    import zipfile
    with zipfile.ZipFile(path) as z:
        name = next(n for n in z.namelist() if n.endswith('data.pkl'))
        data = z.read(name)
    names, strings = set(), []
    for op, arg, _ in pickletools.genops(data):
        if op.name in ('SHORT_BINUNICODE', 'BINUNICODE', 'UNICODE'):
            strings.append(arg)
        elif op.name == 'GLOBAL':
            names.add(arg.replace(' ', '.'))
        elif op.name == 'STACK_GLOBAL':
            names.add(f'{strings[-2]}.{strings[-1]}')
    # Protocol 2 writes Python 2 names for builtins.
    return {n.replace('__builtin__.', 'builtins.') for n in names}
