"""Train a ViViT recognizer with MMAction2's Runner.

    python tools/train.py CONFIG [--work-dir DIR] [--resume [CKPT]] [--amp]
        [--skip-bad-videos] [--nonfinite-loss stop|skip] [--no-exact-resume]
        [--cfg-options k=v ...] [--launcher none|pytorch|slurm]

Reliability (docs/reliability.md): checkpoints the config references are
checked before anything is built; checkpoints are written atomically;
``--resume`` continues bit for bit from the last complete checkpoint; a
NaN/inf loss stops the run (or is skipped); unreadable videos are named (or
skipped with ``--skip-bad-videos``).

Multi-process runs go through tools/dist_train.sh (torchrun) or
tools/slurm_train.sh (srun); on a machine without CUDA they use gloo.
"""
import argparse
import os
import os.path as osp
import sys

# Only light imports before the arguments are parsed: --help and argument
# errors answer in well under a second; torch and MMAction2 load in main().
from mmengine.config import DictAction

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from vivit_cli.dist import LAUNCHERS  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Train a ViViT recognizer')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument(
        '--resume',
        nargs='?',
        type=str,
        const='auto',
        help='resume from this checkpoint; without a path, from the latest '
        'complete checkpoint in the work directory (none: train from '
        'scratch)')
    parser.add_argument(
        '--skip-bad-videos',
        action='store_true',
        help='replace unreadable training videos by other samples (warning '
        'per file, count per epoch) instead of stopping')
    parser.add_argument(
        '--nonfinite-loss',
        choices=('stop', 'skip'),
        default=None,
        help='what a NaN/inf loss does: stop the run (default) or skip the '
        'iteration (NonFiniteLossHook)')
    parser.add_argument(
        '--no-exact-resume',
        action='store_true',
        help='do not add ExactResumeHook (per-epoch seeding, RNG state in '
        'checkpoints, mid-epoch resume)')
    parser.add_argument(
        '--amp',
        action='store_true',
        help='mixed precision: AmpOptimWrapper (dynamic loss scaling) with '
        'CUDA, BF16OptimWrapper (bf16 autocast) on a machine without CUDA')
    parser.add_argument(
        '--tensorboard',
        action='store_true',
        help='also log scalars to TensorBoard (work_dir/<time>/vis_data; '
        'tensorboard --logdir WORK_DIR); needs the tensorboard package')
    parser.add_argument(
        '--no-validate',
        action='store_true',
        help='do not evaluate checkpoints during training')
    parser.add_argument(
        '--auto-scale-lr',
        action='store_true',
        help='scale the learning rate linearly with the total batch size '
        '(the configs give it for auto_scale_lr.base_batch_size)')
    parser.add_argument('--seed', type=int, default=None, help='random seed')
    parser.add_argument(
        '--diff-rank-seed',
        action='store_true',
        help='use a different seed on each rank')
    parser.add_argument(
        '--deterministic',
        action='store_true',
        help='deterministic options for the CUDNN backend')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config settings, e.g. '
        'model.backbone.drop_path_rate=0.1 train_dataloader.batch_size=4')
    parser.add_argument(
        '--launcher', choices=LAUNCHERS, default='none', help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def merge_args(cfg, args):
    """Merge command-line arguments into the config."""
    if args.no_validate:
        cfg.val_cfg = None
        cfg.val_dataloader = None
        cfg.val_evaluator = None

    # work_dir priority: CLI > config > ./work_dirs/<config name>
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(args.config))[0])

    if args.tensorboard:
        add_tensorboard(cfg)

    if args.amp:
        import torch
        from vivit_mm.engine.optim_wrapper import cpu_has_native_bf16
        wrapper = cfg.optim_wrapper.get('type', 'OptimWrapper')
        supported = ('OptimWrapper', 'AmpOptimWrapper', 'BF16OptimWrapper')
        if wrapper not in supported:
            raise ValueError(f'--amp supports optim_wrapper.type in '
                             f'{supported}, got {wrapper!r}.')
        if torch.cuda.is_available():
            cfg.optim_wrapper.type = 'AmpOptimWrapper'
            cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')
        else:
            # mmengine's AmpOptimWrapper refuses to run without CUDA
            cfg.optim_wrapper.type = 'BF16OptimWrapper'
            for key in ('loss_scale', 'dtype', 'use_fsdp'):
                cfg.optim_wrapper.pop(key, None)
            if not cpu_has_native_bf16():
                print('--amp: this CPU has no native bf16 (AVX-512 BF16 or '
                      'AMX); bf16 autocast will be emulated and slower than '
                      'float32.')

    if args.resume is not None and args.resume != 'auto':
        cfg.resume = True
        cfg.load_from = args.resume

    if args.auto_scale_lr:
        cfg.auto_scale_lr.enable = True

    if cfg.get('randomness', None) is None:
        cfg.randomness = dict(
            seed=args.seed,
            diff_rank_seed=args.diff_rank_seed,
            deterministic=args.deterministic)
    elif args.seed is not None:
        cfg.randomness.seed = args.seed

    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    from vivit_cli.preflight import find_resumable_checkpoint
    from vivit_cli.run_config import (add_plain_param_groups_hook,
                                      apply_reliability_defaults)
    if args.resume == 'auto':
        latest = find_resumable_checkpoint(cfg.work_dir) \
            if osp.isdir(cfg.work_dir) else None
        if latest is not None:
            cfg.resume = True
            cfg.load_from = latest
        else:  # nothing to resume: a fresh run (keeps the config's load_from)
            print(f'--resume: no complete checkpoint in {cfg.work_dir}; '
                  'training from the start.')
            cfg.resume = False
    apply_reliability_defaults(cfg, exact_resume=not args.no_exact_resume,
                               nonfinite_loss=args.nonfinite_loss,
                               skip_bad_videos=args.skip_bad_videos)
    # with compile: paramwise_cfg param groups are ConfigDicts, which
    # torch.compile cannot trace; the hook makes them plain dicts.
    add_plain_param_groups_hook(cfg)
    return cfg


def add_tensorboard(cfg) -> None:
    """Log to TensorBoard too: add ``TensorboardVisBackend`` to the
    visualizer (``pip install tensorboard``, or the ``tensorboard`` extra)."""
    visualizer = cfg.get('visualizer', None)
    if not isinstance(visualizer, dict):
        raise ValueError('--tensorboard needs a visualizer in the config, e.g. '
                         "visualizer=dict(type='ActionVisualizer', "
                         "vis_backends=[dict(type='LocalVisBackend')]).")
    backends = list(visualizer.get('vis_backends') or [])
    if not any(b.get('type') == 'TensorboardVisBackend' for b in backends):
        backends.append(dict(type='TensorboardVisBackend'))
    visualizer.vis_backends = backends


def main(argv=None):
    args = parse_args(argv)
    from vivit_cli.threads import prepare_openmp
    prepare_openmp()  # before torch loads
    from mmengine.config import Config
    cfg = merge_args(Config.fromfile(args.config), args)
    from vivit_cli.preflight import check_all
    try:  # before anything is built or dumped; every problem at once
        check_all(cfg, 'train')
    except (FileNotFoundError, ValueError, ImportError) as e:
        raise SystemExit(f'error: {e}') from None

    from mmengine.runner import Runner

    import vivit_mm  # noqa: F401  registers models, transforms, hooks
    from vivit_cli.dist import setup_distributed
    from vivit_cli.threads import setup_threads
    setup_distributed(cfg, args.launcher)
    threads = setup_threads(cfg)
    runner = Runner.from_cfg(cfg)
    runner.logger.info(threads.describe())
    from vivit_mm.models.utils.load_checks import CheckpointMisfitError
    try:
        runner.train()
    except CheckpointMisfitError as e:  # load_from/resume does not fit
        raise SystemExit(f'error: {e}') from None


if __name__ == '__main__':
    main()
