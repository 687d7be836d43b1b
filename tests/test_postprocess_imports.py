import subprocess
import sys


def test_postprocess_does_not_import_torch():
    code = "import sys, nsad.postprocess, nsad.data.transforms; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)
