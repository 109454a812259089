import subprocess
import sys


def test_the_gateway_never_imports_torch():
    # Keeps a torch-free gateway image possible: the network lives in the workers only.
    code = "import sys, app.main; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
