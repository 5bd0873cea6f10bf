#!/usr/bin/env python
"""One training epoch of the synthetic demo, idle and beside busy processes,
with the old thread defaults and with vivit_mm's choice.

Each measurement is a fresh process that trains ``--epochs`` epochs of
``configs/vivit_m2_synthetic.py`` (no validation, no checkpoints) and times
the epochs from the first ``before_train_epoch`` to the last
``after_train_epoch`` (worker start-up included). ``--busy`` single-threaded
busy loops (``python -c 'while True: pass'``) run beside the "busy"
measurements; they are started and killed by this script. Modes:

* ``default``: what the tools did before: torch's default threads (one per
  CPU), the config's workers, ``OMP_NUM_THREADS`` unset;
* ``chosen``: what ``tools/train.py`` and ``tools/run_demo.py`` do now
  (``tools/vivit_cli/threads.py``: ``OMP_WAIT_POLICY=PASSIVE`` before torch
  loads, then :func:`vivit_mm.utils.threads.configure_threads`), with
  ``OMP_NUM_THREADS`` unset;
* ``omp1``: the issue's work-around, ``OMP_NUM_THREADS=1``, nothing else.

Modes and loads are interleaved, repeat by repeat. Before each measurement
the load average is recorded; during it, the CPU time of processes other
than the measured one and its busy loops ("outside load", in CPUs, from
``/proc/stat``), so numbers taken on a shared machine are marked.

    python tools/analysis_tools/benchmark_contention.py --repeats 2 \\
        --out work_dirs/contention.json
"""
import argparse
import json
import os
import os.path as osp
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Dict, List, Optional, Sequence

TOOLS = osp.dirname(osp.dirname(osp.abspath(__file__)))
DEFAULT_CONFIG = osp.join(osp.dirname(TOOLS), 'configs',
                          'vivit_m2_synthetic.py')
MODES = ('default', 'chosen', 'omp1')
THREAD_VARS = ('OMP_NUM_THREADS', 'MKL_NUM_THREADS', 'OMP_WAIT_POLICY',
               'GOMP_SPINCOUNT')


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Time one demo epoch idle and beside busy processes, '
        'with the old thread defaults and with vivit_mm\'s choice.')
    parser.add_argument('--config', default=DEFAULT_CONFIG,
                        help='training config (default: %(default)s)')
    parser.add_argument('--modes', nargs='+', choices=MODES,
                        default=['default', 'chosen'],
                        help='thread settings to compare (default: '
                        '%(default)s)')
    parser.add_argument('--repeats', type=int, default=2,
                        help='measurements per mode and load (default: 2)')
    parser.add_argument('--busy', type=int, default=2,
                        help='busy single-threaded processes beside the '
                        '"busy" measurements (default: 2)')
    parser.add_argument('--epochs', type=int, default=1,
                        help='epochs per measurement (default: 1)')
    parser.add_argument('--out', help='also write the results as JSON here')
    parser.add_argument('--child', choices=MODES, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.epochs < 1 or args.busy < 0:
        parser.error('--repeats and --epochs must be >= 1, --busy >= 0')
    return args


# ----------------------------------------------------------------- child --
def child(mode: str, config: str, epochs: int) -> Dict:
    """Train ``epochs`` epochs of ``config`` in this process; the timing."""
    import contextlib
    import io
    sys.path.insert(0, TOOLS)
    if mode == 'chosen':  # as the tools do, before torch loads
        from vivit_cli.threads import prepare_openmp
        prepare_openmp()
    from mmengine.config import Config
    from run_demo import prepare_data

    cfg = Config.fromfile(config)
    cfg.train_cfg.max_epochs = epochs
    cfg.train_cfg.val_begin = epochs + 1
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    cfg.default_hooks.checkpoint = None
    cfg.param_scheduler = None
    cfg.work_dir = tempfile.mkdtemp(prefix='contention_')
    prepare_data(cfg)
    import torch
    from mmengine.hooks import Hook
    from mmengine.runner import Runner
    line = 'torch defaults'
    if mode == 'chosen':
        from vivit_cli.threads import setup_threads
        line = setup_threads(cfg).describe()
    times = {}

    class Timer(Hook):
        def before_train_epoch(self, runner):
            times.setdefault('start', time.perf_counter())

        def after_train_epoch(self, runner):
            times['end'] = time.perf_counter()

    with contextlib.redirect_stdout(io.StringIO()):
        runner = Runner.from_cfg(cfg)
        runner.register_hook(Timer())
        runner.train()
    return dict(seconds=(times['end'] - times['start']) / epochs,
                intra_op_threads=torch.get_num_threads(),
                num_workers=cfg.train_dataloader.num_workers, choice=line)


# ---------------------------------------------------------------- driver --
def _busy_cpu_seconds() -> float:
    """CPU seconds all CPUs spent busy since boot (``/proc/stat``)."""
    with open('/proc/stat') as f:
        fields = [int(v) for v in f.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf('SC_CLK_TCK')


def _wait_cpu(proc: subprocess.Popen) -> float:
    """Wait for ``proc``; the CPU seconds it and its reaped children used."""
    _, _, usage = os.wait4(proc.pid, 0)
    proc.returncode = 0  # reaped here; keep Popen from waiting again
    return usage.ru_utime + usage.ru_stime


def measure(mode: str, busy: int, args) -> Dict:
    """One measurement in a fresh process, with ``busy`` busy loops."""
    env = {k: v for k, v in os.environ.items() if k not in THREAD_VARS}
    if mode == 'omp1':
        env['OMP_NUM_THREADS'] = '1'
    loadavg = os.getloadavg()
    busy_cpu0, t0 = _busy_cpu_seconds(), time.perf_counter()
    loops = [subprocess.Popen([sys.executable, '-c', 'while True: pass'])
             for _ in range(busy)]
    with tempfile.TemporaryFile('w+') as out:
        proc = subprocess.Popen(
            [sys.executable, osp.abspath(__file__), '--child', mode,
             '--config', args.config, '--epochs', str(args.epochs)],
            env=env, stdout=out, stderr=subprocess.STDOUT)
        ours = _wait_cpu(proc)
        code = proc.returncode
        for loop in loops:
            loop.kill()
        ours += sum(_wait_cpu(loop) for loop in loops)
        wall = time.perf_counter() - t0
        outside = max(0.0, _busy_cpu_seconds() - busy_cpu0 - ours) / wall
        out.seek(0)
        text = out.read()
    lines = [ln for ln in text.splitlines() if ln.startswith('{')]
    if not lines:
        raise RuntimeError(f'measurement {mode} failed:\n{text[-3000:]}')
    result = json.loads(lines[-1])
    return dict(result, mode=mode, busy=busy, loadavg=list(loadavg),
                outside_load=round(outside, 2), exit=code)


def summarise(runs: List[Dict], modes: Sequence[str], busy: int) -> str:
    """The markdown table: median epoch seconds idle and busy, and their
    ratio, per mode."""
    rows = ['| mode | threads / workers | idle epoch (s) | '
            f'beside {busy} busy (s) | busy / idle | outside load '
            '(CPUs, max) |', '|---|---|---|---|---|---|']
    for mode in modes:
        idle = [r for r in runs if r['mode'] == mode and r['busy'] == 0]
        loaded = [r for r in runs if r['mode'] == mode and r['busy'] > 0]
        med_i = statistics.median(r['seconds'] for r in idle)
        med_b = statistics.median(r['seconds'] for r in loaded)
        runs_i = ', '.join(f"{r['seconds']:.1f}" for r in idle)
        runs_b = ', '.join(f"{r['seconds']:.1f}" for r in loaded)
        outside = max(r['outside_load'] for r in idle + loaded)
        rows.append(f"| {mode} | {idle[0]['intra_op_threads']} / "
                    f"{idle[0]['num_workers']} | {med_i:.1f} ({runs_i}) | "
                    f'{med_b:.1f} ({runs_b}) | {med_b / med_i:.2f} | '
                    f'{outside:.2f} |')
    return '\n'.join(rows)


def main(argv: Optional[Sequence[str]] = None) -> List[Dict]:
    args = parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.config, args.epochs)))
        return []
    print(f'uptime: {subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()}')  # noqa: E501
    runs = []
    for rep in range(args.repeats):
        order = list(args.modes) if rep % 2 == 0 else list(args.modes)[::-1]
        for mode in order:
            loads = (0, args.busy) if rep % 2 == 0 else (args.busy, 0)
            for busy in loads:
                run = measure(mode, busy, args)
                run['repeat'] = rep
                runs.append(run)
                print(f"[{rep}] {mode:8s} busy={busy} "
                      f"{run['seconds']:6.1f} s/epoch  load avg "
                      f"{run['loadavg'][0]:.2f}, outside load "
                      f"{run['outside_load']:.2f} CPUs  ({run['choice']})",
                      flush=True)
    table = summarise(runs, args.modes, args.busy)
    print(table)
    if args.out:
        os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
        with open(args.out, 'w') as f:
            json.dump(dict(runs=runs, table=table, cpus=os.cpu_count(),
                           argv=list(argv or sys.argv[1:])), f, indent=2)
    return runs


if __name__ == '__main__':
    main()
