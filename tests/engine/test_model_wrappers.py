"""``DeviceAwareDDP`` is registered by ``import vivit_mm`` alone (a Runner
built in user code, without tools/, finds it); the distributed tests of
the engine train through it on the CPU (gloo)."""
import json
import subprocess
import sys

CODE = '''
import json, sys
import vivit_mm
from mmaction.registry import MODEL_WRAPPERS as MMACTION_WRAPPERS
from mmengine.registry import MODEL_WRAPPERS
from vivit_mm.engine import DeviceAwareDDP
print(json.dumps(dict(
    root=MODEL_WRAPPERS.get('DeviceAwareDDP') is DeviceAwareDDP,
    mmaction=MMACTION_WRAPPERS.get('DeviceAwareDDP') is DeviceAwareDDP,
    tools=sorted(m for m in sys.modules if m.split('.')[0] == 'vivit_cli'))))
'''


def test_import_vivit_mm_alone_registers_device_aware_ddp(tmp_path):
    proc = subprocess.run([sys.executable, '-c', CODE], cwd=str(tmp_path),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    found = json.loads(proc.stdout.strip().splitlines()[-1])
    assert found == dict(root=True, mmaction=True, tools=[])
