"""The main demo job: train a small ViViT Model 2 on the embedded synthetic
motion data set, test it with multi-view TTA on held-out videos and plot the
training curves. Runs on a CPU in a few minutes.

    python tools/run_demo.py
    # the paper's average-pool baseline (no temporal encoder), results in
    # work_dirs/vivit_m2_synthetic_avgpool:
    python tools/run_demo.py --cfg-options model.backbone.num_temporal_layers=0

Steps: generate the videos if the data folder has none, train with the
mmengine ``Runner`` (validation each epoch), test the final model with the
config's multi-view test pipeline, print top-1 / top-5 / mean class
accuracy, write ``demo_results.json`` and ``training_curves.png`` into the
work dir.
"""
import argparse
import contextlib
import json
import os
import os.path as osp
import sys
import time
from typing import Dict, List, Optional, Sequence

DEFAULT_CONFIG = osp.join(
    osp.dirname(osp.dirname(osp.abspath(__file__))), 'configs',
    'vivit_m2_synthetic.py')


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    from mmengine.config import DictAction
    parser = argparse.ArgumentParser(
        description='Synthetic-motion ViViT demo: generate, train, test, '
        'plot.')
    parser.add_argument('config', nargs='?', default=DEFAULT_CONFIG,
                        help='config file (default: %(default)s)')
    parser.add_argument('--work-dir', help='where logs, checkpoints, '
                        'results and the plot go (default: '
                        'work_dirs/<config name>, with _avgpool appended '
                        'for num_temporal_layers=0)')
    parser.add_argument('--seed', type=int, default=None,
                        help='training seed (default: the config\'s)')
    parser.add_argument('--data-seed', type=int, default=None,
                        help='seed of the generated data set; a seed other '
                        'than the config\'s uses the folder '
                        '<data_root>_seed<N> (default: the config\'s)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, key=value')
    parser.add_argument('--verbose', action='store_true',
                        help='print the full Runner log (environment, '
                        'config, every logged iteration) instead of one '
                        'progress line per epoch; the full log is always in '
                        'the work dir')
    return parser.parse_args(argv)


class _Progress:
    """Prints one progress bar per training epoch (redrawn in a terminal,
    one line per epoch otherwise) and the validation accuracy, to
    ``out``."""

    def __init__(self, out) -> None:
        from mmengine.hooks import Hook

        self.out = out
        self.tty = hasattr(out, 'isatty') and out.isatty()
        progress = self

        class ProgressHook(Hook):
            priority = 'LOWEST'

            def before_train_epoch(self, runner):
                progress.start(runner)

            def after_train_iter(self, runner, batch_idx, data_batch=None,
                                 outputs=None):
                progress.step(runner, batch_idx, outputs)

            def after_train_epoch(self, runner):
                progress.end_train(runner)

            def after_val_epoch(self, runner, metrics=None):
                progress.end_val(metrics or {})

        self.hook = ProgressHook()
        self.line = ''

    def start(self, runner) -> None:
        self.t0, self.n, self.loss = time.time(), len(
            runner.train_dataloader), float('nan')
        self.epoch = f'epoch {runner.epoch + 1:>2}/{runner.max_epochs}'

    def step(self, runner, batch_idx: int, outputs) -> None:
        if outputs and 'loss' in outputs:
            loss = outputs['loss']
            self.loss = float(getattr(loss, 'detach', lambda: loss)())
        done = batch_idx + 1
        bar = '#' * (20 * done // self.n) + '-' * (20 - 20 * done // self.n)
        self.line = (f'[demo] {self.epoch} [{bar}] {done}/{self.n} it, '
                     f'{time.time() - self.t0:5.1f} s, loss {self.loss:.3f}')
        if self.tty:
            self.out.write('\r' + self.line)
            self.out.flush()

    def end_train(self, runner) -> None:
        if self.tty:
            self.out.write('\r' + self.line)

    def end_val(self, metrics: dict) -> None:
        top1 = metrics.get('acc/top1')
        val = f', val top-1 {100 * top1:5.1f}%' if top1 is not None else ''
        self.out.write(('' if self.tty else self.line) + val + '\n')
        self.out.flush()


def _datasets(cfg) -> List:
    """The innermost data set config of every data loader (inside wrappers
    such as ReproducibleDataset)."""
    found = []
    for split in ('train', 'val', 'test'):
        loader = cfg.get(f'{split}_dataloader')
        ds = None if loader is None else loader.dataset
        while ds is not None and isinstance(ds.get('dataset'), dict):
            ds = ds.dataset
        if ds is not None:
            found.append(ds)
    return found


def prepare_data(cfg, data_seed: Optional[int] = None) -> None:
    """Generate the synthetic videos of every dataset in ``cfg`` if missing.

    With ``data_seed``, every synthetic dataset of the config is pointed at
    ``<data_root>_seed<N>`` generated with that seed.
    """
    from vivit_mm.datasets.synthetic import ensure_dataset
    for ds in _datasets(cfg):
        if ds.get('type') != 'SyntheticMotionDataset':
            continue
        ds.generate = dict(ds.get('generate') or {})
        if data_seed is not None and data_seed != ds.generate.get('seed', 0):
            ds.generate['seed'] = data_seed
            ds.data_root = f"{ds.data_root.rstrip('/')}_seed{data_seed}"
        ensure_dataset(ds.data_root, **ds.generate)


def read_scalars(work_dir: str) -> Dict[str, List]:
    """Per-epoch training loss and validation accuracy from the newest
    ``vis_data/scalars.json`` of an mmengine work dir.

    Returns:
        dict: ``epoch`` (list of epochs with training logs), ``loss`` (mean
        logged training loss of each of them), ``val_epoch`` and
        ``val_top1`` (validation top-1 after each validated epoch).
    """
    runs = sorted(d for d in os.listdir(work_dir)
                  if osp.isfile(osp.join(work_dir, d, 'vis_data',
                                         'scalars.json')))
    if not runs:
        raise FileNotFoundError(f'No vis_data/scalars.json under '
                                f'{work_dir!r}: did training run?')
    losses: Dict[int, List[float]] = {}
    val: Dict[int, float] = {}
    with open(osp.join(work_dir, runs[-1], 'vis_data', 'scalars.json')) as f:
        for line in f:
            rec = json.loads(line)
            if 'loss' in rec and 'epoch' in rec:
                losses.setdefault(int(rec['epoch']), []).append(rec['loss'])
            elif 'acc/top1' in rec:  # validation: step is the epoch
                val[int(rec['step'])] = float(rec['acc/top1'])
    epochs = sorted(losses)
    return dict(epoch=epochs,
                loss=[sum(losses[e]) / len(losses[e]) for e in epochs],
                val_epoch=sorted(val), val_top1=[val[e] for e in sorted(val)])


def plot_curves(curves: Dict[str, List], path: str, title: str,
                chance: Optional[float] = None) -> None:
    """Training loss and validation top-1 per epoch, side by side, as PNG."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    ax1.plot(curves['epoch'], curves['loss'], marker='o', ms=3)
    ax1.set(xlabel='epoch', ylabel='training loss (mean of logged values)',
            title='Training loss')
    ax2.plot(curves['val_epoch'], [100 * a for a in curves['val_top1']],
             marker='o', ms=3, label='validation top-1 (1 view)')
    if chance is not None:
        ax2.axhline(100 * chance, color='grey', ls='--', label='chance')
    ax2.set(xlabel='epoch', ylabel='top-1 (%)', ylim=(0, 101),
            title='Validation accuracy')
    ax2.legend(loc='lower right')
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: Optional[Sequence[str]] = None) -> Dict:
    args = parse_args(argv)
    sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
    from vivit_cli.threads import prepare_openmp
    prepare_openmp()  # before torch loads
    from mmengine.config import Config
    from mmengine.runner import Runner

    start = time.time()
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    name = osp.splitext(osp.basename(args.config))[0]
    if cfg.model.backbone.get('num_temporal_layers') == 0:
        name += '_avgpool'  # keep the baseline's results apart
    cfg.work_dir = args.work_dir or osp.join('work_dirs', name)
    if args.seed is not None:
        cfg.randomness = dict(cfg.get('randomness') or {}, seed=args.seed)

    from vivit_cli.run_config import add_plain_param_groups_hook
    from vivit_cli.threads import setup_threads
    add_plain_param_groups_hook(cfg)  # compile + paramwise_cfg
    threads = setup_threads(cfg)  # torch threads and workers fit the CPUs
    prepare_data(cfg, args.data_seed)
    t_data = time.time() - start
    print(f'[demo] data ready in {t_data:.1f} s '
          f'({_datasets(cfg)[0].data_root})', flush=True)
    if not args.verbose:  # else the Runner's logger prints it
        print(f'[demo] {threads.describe()}', flush=True)

    console = sys.stdout
    if not args.verbose:
        # The Runner's console output (environment, config, every logged
        # iteration) goes to a file; its full log is in the work dir anyway.
        os.makedirs(cfg.work_dir, exist_ok=True)
        log = open(osp.join(cfg.work_dir, 'console.log'), 'a')
        print(f'[demo] training; full output in {log.name} (--verbose '
              'prints it here)', flush=True)
        with contextlib.redirect_stdout(log):
            runner = Runner.from_cfg(cfg)
            runner.logger.info(threads.describe())
            runner.register_hook(_Progress(console).hook)
            runner.train()
            t_train = time.time() - start - t_data
            metrics = runner.test()
    else:
        runner = Runner.from_cfg(cfg)
        runner.logger.info(threads.describe())
        runner.train()
        t_train = time.time() - start - t_data
        # Test the final weights (still in memory), multi-view pipeline.
        metrics = runner.test()
    t_test = time.time() - start - t_data - t_train
    metrics = {k: float(v) for k, v in metrics.items()}

    num_classes = cfg.model.cls_head.num_classes
    views = _count_views(_datasets(cfg)[-1].pipeline)
    curves = read_scalars(cfg.work_dir)
    plot_path = osp.join(cfg.work_dir, 'training_curves.png')
    backbone = cfg.model.backbone
    plot_curves(curves, plot_path,
                f'{backbone.type} (L_t={backbone.num_temporal_layers}) on '
                f'synthetic motion: test top-1 '
                f"{100 * metrics['acc/top1']:.1f}% ({views} views)",
                chance=1 / num_classes)
    result = dict(
        config=args.config, work_dir=cfg.work_dir,
        num_temporal_layers=backbone.num_temporal_layers,
        seed=cfg.randomness.get('seed'),
        data_root=_datasets(cfg)[-1].data_root,
        test_views=views, chance=1 / num_classes, test=metrics,
        final_val_top1=(curves['val_top1'] or [None])[-1],
        seconds=dict(data=round(t_data, 1), train=round(t_train, 1),
                     test=round(t_test, 1),
                     total=round(time.time() - start, 1)),
        plot=plot_path)
    with open(osp.join(cfg.work_dir, 'demo_results.json'), 'w') as f:
        json.dump(result, f, indent=2)
    top5 = (f"top-5 {100 * metrics['acc/top5']:.2f}%  "
            if num_classes > 5 else '')  # with <= 5 classes top-5 is 100%
    print(f'[demo] held-out test ({len(runner.test_dataloader.dataset)} '
          f'videos, {views}-view TTA): '
          f"top-1 {100 * metrics['acc/top1']:.2f}%  {top5}"
          f"mean class acc {100 * metrics['acc/mean1']:.2f}%  "
          f'(chance {100 / num_classes:.1f}%)')
    print(f"[demo] time: data {t_data:.0f} s, train {t_train:.0f} s, "
          f"test {t_test:.0f} s, total {result['seconds']['total']:.0f} s")
    print(f'[demo] training curves: {plot_path}')
    return result


def _count_views(pipeline) -> int:
    """Temporal clips x spatial crops of a test pipeline."""
    from vivit_mm.datasets.video_errors import iter_transforms
    clips, crops = 1, 1
    for t in iter_transforms(pipeline):
        if t['type'] == 'SampleFrames':
            clips = t.get('num_clips', 1)
        elif t['type'] == 'ThreeCrop':
            crops = 3
        elif t['type'] == 'TenCrop':
            crops = 10
    return clips * crops


if __name__ == '__main__':
    main()
