import subprocess
import sys


def test_the_runtime_and_the_service_import_neither_torch_nor_lightning_nor_scipy():
    code = ("import sys, nsad.deploy, nsad.deploy.service, nsad.postprocess\n"
            "heavy = sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'lightning', 'scipy', 'torchvision'})\n"
            "assert not heavy, heavy\n"
            "assert 'onnxruntime' in sys.modules and 'cv2' in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)
