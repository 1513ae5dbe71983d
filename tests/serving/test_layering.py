"""Design rule: serving never imports training (a served model is a self-contained ONNX file)."""

import subprocess
import sys
from pathlib import Path

SERVING = Path(__file__).resolve().parents[2] / "serving"


def test_no_serving_module_pulls_in_cityagent_training():
    modules = [f"cityagent.serving.{p.stem}" for p in SERVING.glob("*.py") if p.stem != "__init__"]
    modules += ["cityagent.serving.proto.inference_pb2_grpc", "cityagent.agent.cli_serve"]
    code = "import importlib, sys\n" + "".join(f"importlib.import_module({m!r})\n" for m in modules)
    code += "bad = sorted(m for m in sys.modules if m.startswith(('cityagent.training', 'cityagent.models')))\n"
    code += "assert not bad, bad\n"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
    assert len(modules) > 15
