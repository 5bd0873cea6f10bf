"""The report's sections, in the order a run writes them; each takes the
report, the :class:`~vivit_bench.settings.Settings` and the
:class:`~vivit_bench.settings.Context`."""
from .amp import amp_section, bf16_peak_flops
from .checkpoint import checkpoint_section
from .compare import compare_section
from .compiled import compile_section
from .machine import gemm_section, machine_section
from .sweep import explicit_memory_section, sweep_section

__all__ = ['machine_section', 'gemm_section', 'sweep_section',
           'explicit_memory_section', 'compare_section',
           'checkpoint_section', 'amp_section', 'compile_section',
           'bf16_peak_flops']
