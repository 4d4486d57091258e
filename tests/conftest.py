import os
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FASHION_MNIST_ROOT = "/usr/share/datasets/fashion-mnist"


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture(scope="session")
def snakemake_exe() -> str:
    exe = shutil.which("snakemake") or str(Path(os.sys.executable).with_name("snakemake"))
    assert Path(exe).exists(), "snakemake is not installed in this environment"
    return exe
