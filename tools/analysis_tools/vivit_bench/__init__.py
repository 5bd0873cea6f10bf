"""The benchmark of ``tools/analysis_tools/benchmark.py``, one job a module:

* :mod:`~vivit_bench.settings`: the run's options
  (:class:`Settings`) and what the sections share (:class:`Context`).
* :mod:`~vivit_bench.measure`: timing, GEMM rate, activation bytes,
  peak memory (nothing here builds models).
* :mod:`~vivit_bench.cases`: the measured models (ViViT variants, a
  config's backbone, HuggingFace ViViT, MMAction2 TimeSformer).
* :mod:`~vivit_bench.timing`: timing and memory of those cases;
  :mod:`~vivit_bench.rss_child`, the child process of the CPU step
  peak.
* :mod:`~vivit_bench.sections`: the report's sections.
* :mod:`~vivit_bench.report` (markdown and JSON) and
  :mod:`~vivit_bench.plot` (``benchmark.png``).

Nothing is imported here, so that the child process starts light.
"""
