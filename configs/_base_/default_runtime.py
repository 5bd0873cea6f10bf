# MMAction2 1.1.0's _base_/default_runtime.py, as a local file (inheriting it
# with 'mmaction::_base_/default_runtime.py' needs pkg_resources, which
# setuptools >= 81 no longer ships), with vivit_mm's reliability hooks named
# here so that every config describes its whole run:
#   checkpoint:     AtomicCheckpointHook, CheckpointHook with crash-safe
#                   writes (keeps the last 3 epoch checkpoints plus the best)
#   weights_only:   checkpoints load with torch.load(weights_only=True)
#   exact_resume:   --resume continues bit for bit (needs the training
#                   loader's ResumableSampler and ReproducibleDataset, as
#                   the dataset bases set)
#   nonfinite_loss: a NaN/inf loss stops the run before the update
#                   (action='skip' drops the update instead)
#   load_check:     a checkpoint that does not fit the model is refused, the
#                   file named (training: a head of another class count
#                   starts anew; allow_backbone_misfit=True lets a
#                   backbone take a checkpoint that only partly fits)
#   visualization:  off; tools/test.py --show-dir switches it on
#                   (VideoVisualizationHook: MMAction2 1.1's VisualizationHook
#                   cannot draw the [views, C, T, H, W] inputs of NCTHW)
# tools/train.py and tools/test.py switch dist_cfg to gloo on machines
# without CUDA.
default_scope = 'mmaction'
custom_imports = dict(imports=['vivit_mm'], allow_failed_imports=False)

default_hooks = dict(
    runtime_info=dict(type='RuntimeInfoHook'),
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=20, ignore_last=False),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(
        type='AtomicCheckpointHook', interval=1, max_keep_ckpts=3,
        save_best='auto'),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    sync_buffers=dict(type='SyncBuffersHook'),
    weights_only=dict(type='WeightsOnlyCheckpointHook'),
    exact_resume=dict(type='ExactResumeHook'),
    nonfinite_loss=dict(type='NonFiniteLossHook', action='stop'),
    load_check=dict(type='LoadCheckHook'),
    visualization=dict(type='VideoVisualizationHook', enable=False))

env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    dist_cfg=dict(backend='nccl'))

log_processor = dict(type='LogProcessor', window_size=20, by_epoch=True)

vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(type='ActionVisualizer', vis_backends=vis_backends)

log_level = 'INFO'
load_from = None
resume = False
