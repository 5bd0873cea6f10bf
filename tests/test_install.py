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
