"""Test (multi-view) a ViViT recognizer checkpoint with MMAction2's Runner.

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--dump FILE.pkl]
        [--compile] [--cfg-options k=v ...] [--launcher none|pytorch|slurm]

The checkpoint is read with ``torch.load(weights_only=True)`` and the
allow-list of vivit_mm.compat. The metrics are logged and written
to ``<work_dir>/test_metrics.json``.

``--show-dir DIR`` writes the frames of every ``--interval``-th test video,
as the model saw them (first view), with the ground truth and the predicted
class drawn on them: ``DIR/{video}_0/frames_0/{i}.png``.

``--compile`` runs the backbone through ``torch.compile`` (mmengine's
``compile`` key applies to training only); a ``compile`` dict in the config
supplies the ``torch.compile`` arguments.
"""
import argparse
import json
import os
import os.path as osp
import sys

# Only light imports before the arguments are parsed (fast --help).
from mmengine.config import DictAction

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from vivit_cli.dist import LAUNCHERS  # noqa: E402

# Hooks that initialise a model for training; a test loads a checkpoint.
TRAIN_ONLY_HOOKS = ('ViViTInitHook', )
# Names the checkpoint file when the model refuses it (it does not fit).
LOAD_CHECK_HOOK = 'LoadCheckHook'
# --show/--show-dir draw through vivit_mm's hook, which takes the arguments
# of MMAction2's VisualizationHook and replaces it (see its docstring).
VISUALIZATION_HOOK = 'VideoVisualizationHook'
MMACTION_VISUALIZATION_HOOKS = ('VisualizationHook',
                                'mmaction.VisualizationHook')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Test (and evaluate) a ViViT recognizer')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument(
        '--work-dir', help='the directory to save logs and metrics')
    parser.add_argument(
        '--dump',
        type=str,
        help='dump the predictions to a pickle file for offline evaluation '
        '(each batch is also appended to FILE.parts as it is done, so a '
        'stopped run keeps its predictions)')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config settings, e.g. '
        'model.test_cfg.max_testing_views=2')
    parser.add_argument(
        '--show-dir',
        help='directory where the visualisations will be saved')
    parser.add_argument(
        '--show', action='store_true', help='show the predictions')
    parser.add_argument(
        '--interval', type=int, default=1, help='visualise every N samples')
    parser.add_argument(
        '--wait-time', type=float, default=2, help='display time (s)')
    parser.add_argument(
        '--compile',
        action='store_true',
        help='torch.compile the backbone (arguments from the config\'s '
        '`compile` dict, if it has one); the first batch compiles')
    parser.add_argument(
        '--launcher', choices=LAUNCHERS, default='none', help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def merge_args(cfg, args):
    """Merge command-line arguments into the config."""
    if args.show or args.show_dir is not None:
        if not isinstance(cfg.default_hooks.get('visualization'), dict):
            cfg.default_hooks.visualization = dict(type=VISUALIZATION_HOOK)
        vis = cfg.default_hooks.visualization
        if vis.get('type') in MMACTION_VISUALIZATION_HOOKS:
            # MMAction2 1.1's hook fails on [views, C, T, H, W] inputs.
            vis.type = VISUALIZATION_HOOK
        vis.enable = True
        vis.show = args.show
        vis.wait_time = args.wait_time
        vis.out_dir = args.show_dir
        vis.interval = args.interval

    if args.dump is not None:
        if not args.dump.endswith(('.pkl', '.pickle')):
            raise ValueError(f'--dump must name a .pkl file, got '
                             f'{args.dump!r}.')
        # DumpResults that also appends each batch to FILE.pkl.parts
        dump_metric = dict(type='StreamingDumpResults',
                           out_file_path=args.dump)
        if isinstance(cfg.test_evaluator, (list, tuple)):
            cfg.test_evaluator = list(cfg.test_evaluator) + [dump_metric]
        else:
            cfg.test_evaluator = [cfg.test_evaluator, dump_metric]

    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)

    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(args.config))[0])

    cfg.custom_hooks = [
        h for h in cfg.get('custom_hooks', None) or []
        if h.get('type') not in TRAIN_ONLY_HOOKS
    ]
    from vivit_cli.run_config import hook_types
    if LOAD_CHECK_HOOK not in hook_types(cfg):  # names the file in refusals
        cfg.custom_hooks.append(dict(type=LOAD_CHECK_HOOK))
    cfg.load_from = args.checkpoint
    cfg.resume = False
    return cfg


def main(argv=None):
    args = parse_args(argv)
    from vivit_cli.threads import prepare_openmp
    prepare_openmp()  # before torch loads
    from mmengine.config import Config
    cfg = merge_args(Config.fromfile(args.config), args)
    from vivit_cli.preflight import check_all
    try:  # before anything is built or dumped; every problem at once
        check_all(cfg, 'test', checkpoint=args.checkpoint)
    except (FileNotFoundError, ValueError, ImportError) as e:
        raise SystemExit(f'error: {e}') from None

    from mmengine.dist import get_rank
    from mmengine.runner import Runner

    import vivit_mm  # noqa: F401  registers models, transforms, hooks
    from vivit_cli.dist import setup_distributed
    from vivit_mm.utils.compile import compile_backbone
    from vivit_cli.threads import setup_threads
    setup_distributed(cfg, args.launcher)
    threads = setup_threads(cfg)
    runner = Runner.from_cfg(cfg)
    runner.logger.info(threads.describe())
    if args.compile:
        options = cfg.get('compile', None)
        options = dict(options) if isinstance(options, dict) else {}
        compile_backbone(runner.model, options)
        runner.logger.info(f'Backbone compiled: torch.compile({options})')
    from vivit_mm.models.utils.load_checks import CheckpointMisfitError
    try:
        metrics = runner.test()
    except CheckpointMisfitError as e:
        raise SystemExit(f'error: {e}') from None
    if get_rank() == 0:
        out = osp.join(cfg.work_dir, 'test_metrics.json')
        with open(out, 'w') as f:
            json.dump({k: float(v) for k, v in metrics.items()}, f, indent=1)
        print(f'Test metrics written to {out}: {metrics}')


if __name__ == '__main__':
    main()
