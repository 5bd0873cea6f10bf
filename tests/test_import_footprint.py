"""``import vivit_mm`` loads the plugin, what configs name, and nothing
else: not the converters of other formats (HuggingFace, scenic, the
recognizer writer), deployment, attention maps and visualisation, or the
benchmark's measuring code, and no optional dependency that its hosts do
not load themselves. Yet everything the package registers is registered
by that import alone. Each check runs in a fresh interpreter."""
import json
import subprocess
import sys

from tests.test_compat import HOST

#: Modules of ours that ``import vivit_mm`` must not load (prefixes).
NOT_LOADED = ('vivit_mm.convert.hf', 'vivit_mm.convert.scenic',
              'vivit_mm.convert.recognizer', 'vivit_mm.deploy',
              'vivit_mm.visualization', 'vivit_bench', 'vivit_cli')
#: Optional dependencies: loaded only where the hosts load them anyway.
OPTIONAL = ('av', 'matplotlib', 'onnx', 'onnxruntime', 'onnxscript',
            'msgpack', 'safetensors', 'transformers', 'tensorboard',
            'torchcodec', 'decord')

REGISTERED = r'''
import json, sys
def registered():
    """'registry: name' of every entry whose object is defined in vivit_mm,
    over MMAction2's and mmengine's registries and mmengine's file
    backends."""
    import mmaction.registry, mmengine.registry
    from mmengine.fileio.backends import registry_utils
    out = set()
    for module in (mmaction.registry, mmengine.registry):
        for reg in vars(module).values():
            if isinstance(reg, mmengine.registry.Registry):
                out |= {f'{reg.scope}.{reg.name}: {key}'
                        for key, obj in reg.module_dict.items()
                        if getattr(obj, '__module__', '').startswith(
                            'vivit_mm')}
    out |= {f'file backend: {key}'
            for key, obj in registry_utils.backends.items()
            if obj.__module__.startswith('vivit_mm')}
    return out
'''

PROBE = REGISTERED + r'''
import vivit_mm
loaded = sorted(sys.modules)
first = registered()
# now every module of the package, the lazily loaded ones included
import importlib, pkgutil
skipped = {}
for info in pkgutil.walk_packages(vivit_mm.__path__, 'vivit_mm.'):
    try:
        importlib.import_module(info.name)
    except ImportError as e:  # an optional dependency
        skipped[info.name] = str(e)
print(json.dumps(dict(loaded=loaded, registered=sorted(first),
                      all_registered=sorted(registered()), skipped=skipped)))
'''

HOST_ONLY = r'''
import importlib, json, sys, warnings
warnings.simplefilter('ignore')
for name in json.loads(sys.argv[1]):
    try:
        importlib.import_module(name)
    except Exception:
        pass
print(json.dumps(sorted(sys.modules)))
'''


def _python(code, *args, cwd):
    proc = subprocess.run([sys.executable, '-c', code, *args], cwd=str(cwd),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_import_loads_the_plugin_only(tmp_path):
    report = _python(PROBE, cwd=tmp_path)
    loaded = report['loaded']
    ours = [m for m in loaded if m.startswith(NOT_LOADED)]
    assert ours == [], f'import vivit_mm loads {ours}'
    # what a config names is there: the backbones, inflation's image ViT
    # reading, the hooks
    for name in ('vivit_mm.models.backbones.vivit_m4',
                 'vivit_mm.engine.hooks.vivit_init_hook',
                 'vivit_mm.engine.hooks.video_visualization_hook',
                 'vivit_mm.convert.image_vit'):
        assert name in loaded, name
    # optional dependencies only where the hosts load them themselves
    host = _python(HOST_ONLY, json.dumps(
        [m for m in loaded if m.split('.')[0] in HOST]), cwd=tmp_path)
    extra = [m for m in loaded if m.split('.')[0] in OPTIONAL
             and m not in host]
    assert extra == [], f'import vivit_mm loads {extra}'
    # no registration hides in a module the import does not load
    assert report['registered'] == report['all_registered']
    assert 'mmaction.model: ViViTM1' in report['registered']
    assert 'mmaction.hook: VideoVisualizationHook' in report['registered']
    assert 'file backend: atomic_local' in report['registered']
    assert not [m for m in report['skipped'] if '.deploy' not in m
                and '.visualization' not in m], report['skipped']
