"""The installed package: it cannot be shadowed by a folder named vivit_mm
in the working directory (the path-based editable install), and every
install requirement is a package vivit_mm imports."""
import configparser
import re
import subprocess
import sys

from tests.conftest import REPO

# install_requires name -> the module it provides
MODULES = {'mmcv-lite': 'mmcv', 'mmaction2': 'mmaction',
           'mmpretrain': 'mmpretrain', 'mmengine': 'mmengine',
           'torch': 'torch', 'torchvision': 'torchvision',
           'decord': 'decord', 'einops': 'einops'}


def test_a_folder_named_vivit_mm_does_not_shadow_the_package(tmp_path):
    """A script next to the clone (itself a folder named vivit_mm) imports
    the real package, not the clone's root as an empty namespace."""
    (tmp_path / 'vivit_mm').mkdir()
    (tmp_path / 'vivit_mm' / 'README.md').write_text('a clone\n')
    proc = subprocess.run(
        [sys.executable, '-c',
         'import vivit_mm; print(vivit_mm.__file__); '
         'print(vivit_mm.__version__)'],
        cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    path, version = proc.stdout.split()[-2:]
    assert path == str(REPO / 'vivit_mm' / '__init__.py')
    assert re.fullmatch(r'\d+\.\d+\.\d+', version)


def test_every_install_requirement_is_used():
    """setup.cfg installs nothing the package does not import (mmpretrain:
    the position-table resize)."""
    cfg = configparser.ConfigParser()
    cfg.read(REPO / 'setup.cfg')
    requires = [re.split(r'[<>=!~ ]', line.strip())[0]
                for line in cfg['options']['install_requires'].splitlines()
                if line.strip()]
    source = '\n'.join(p.read_text() for p in (REPO / 'vivit_mm').rglob(
        '*.py'))
    for name in requires:
        module = MODULES[name]
        if module in ('torchvision', 'decord'):
            continue  # used by MMAction2's transforms the configs name
        assert re.search(rf'^\s*(from|import) {module}\b', source,
                         re.M), f'{name} is required but never imported'
    configs = '\n'.join(p.read_text() for p in (REPO / 'configs').rglob(
        '*.py'))
    assert 'DecordInit' in configs and 'TorchVisionWrapper' in configs


def test_the_built_wheel_is_the_plugin_and_forces_no_pins(tmp_path):
    """What ``pip install vivit_mm`` puts into a user's environment: the
    package without measurement code, and requirements as ranges (no ``==``
    on the OpenMMLab stack or decord, no mmcv-lite over a full mmcv)."""
    import shutil
    import zipfile
    src = tmp_path / 'src'
    shutil.copytree(REPO / 'vivit_mm', src / 'vivit_mm',
                    ignore=shutil.ignore_patterns('__pycache__'))
    for name in ('setup.cfg', 'pyproject.toml', 'README.md', 'LICENSE'):
        shutil.copy(REPO / name, src / name)
    proc = subprocess.run(
        [sys.executable, '-m', 'pip', 'wheel', '--no-deps',
         '--no-build-isolation', '-q', '-w', str(tmp_path / 'dist'),
         str(src)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    wheel, = (tmp_path / 'dist').glob('vivit_mm-*.whl')
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        metadata = z.read(next(n for n in names
                               if n.endswith('/METADATA'))).decode()
    packages = {n.rsplit('/', 1)[0] for n in names
                if n.startswith('vivit_mm/')}
    assert 'vivit_mm/models' in packages
    assert not [p for p in packages if 'benchmark' in p], packages
    requires = [line.split(':', 1)[1].strip()
                for line in metadata.splitlines()
                if line.startswith('Requires-Dist:')
                and 'extra ==' not in line]
    names = {re.split(r'[<>=!~ ;]', r)[0].lower() for r in requires}
    assert {'torch', 'mmengine', 'mmaction2', 'mmpretrain', 'decord'} <= names
    assert not [r for r in requires if '==' in r], requires
    assert not [n for n in names if n.startswith('mmcv')], requires
