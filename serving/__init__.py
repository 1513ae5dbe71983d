"""cityagent.serving: answer predictions from ONNX models over gRPC (Open Inference Protocol v2, KServe/Triton wire).

Entry points: ``cityagent serve`` (agent/cli_serve.py), ``InferenceServer`` (server.py) and ``ServerThread``
(background.py, for notebooks and tests). The request path is servicer (translate) -> codec (decode) -> dataplane
-> store (which version) -> batching -> session (ONNX Runtime) and back; sources.py fetches versions from the MLflow
registry or local files, health.py / metrics.py / auth.py / tls.py / guard.py wrap the server. Never imports
cityagent.training: a served model is a self-contained ONNX file.
"""
