#!/usr/bin/env bash
# Regenerate the Python stubs of inference.proto (run from anywhere; PYTHON picks the interpreter).
#
#   serving/proto/generate.sh [OUT_DIR]      # default: next to this script
#
# Two deterministic edits after protoc:
#  * imports read `from cityagent.serving.proto import ...` (the -I mapping below does that);
#  * the messages live in a private descriptor pool, not the process-wide default one, because
#    tritonclient registers the same `inference.*` symbols in the default pool and protobuf refuses
#    a second definition: with a private pool the server and stock clients share one process.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="${1:-$here}"
py="${PYTHON:-python}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

"$py" -m grpc_tools.protoc -I"cityagent/serving/proto=$here" \
  --python_out="$tmp" --pyi_out="$tmp" --grpc_python_out="$tmp" \
  cityagent/serving/proto/inference.proto

gen="$tmp/cityagent/serving/proto"
sed -i 's/_descriptor_pool\.Default()/_descriptor_pool.DescriptorPool()/' "$gen/inference_pb2.py"
grep -q '_descriptor_pool.DescriptorPool()' "$gen/inference_pb2.py"
mkdir -p "$out"
cp "$gen/inference_pb2.py" "$gen/inference_pb2.pyi" "$gen/inference_pb2_grpc.py" "$out/"
