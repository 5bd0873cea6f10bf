from .atomic_checkpoint_hook import AtomicCheckpointHook
from .exact_resume_hook import ExactResumeHook
from .load_check_hook import LoadCheckHook
from .nonfinite_loss_hook import NonFiniteLossHook
from .plain_param_groups_hook import PlainParamGroupsHook
from .skipped_videos_hook import SkippedVideosHook
from .video_visualization_hook import VideoVisualizationHook
from .vivit_init_hook import ViViTInitHook
from .weights_only_checkpoint_hook import WeightsOnlyCheckpointHook

__all__ = ['ViViTInitHook', 'AtomicCheckpointHook', 'ExactResumeHook',
           'NonFiniteLossHook', 'SkippedVideosHook', 'PlainParamGroupsHook',
           'WeightsOnlyCheckpointHook', 'VideoVisualizationHook',
           'LoadCheckHook']
