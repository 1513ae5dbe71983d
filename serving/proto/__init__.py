"""Generated Open Inference Protocol stubs (see inference.proto and generate.sh); messages live in a private pool."""
