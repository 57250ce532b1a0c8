"""Generated TFLite bindings (tools/gen_bindings.py); never edit by hand."""
