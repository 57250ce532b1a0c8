"""File format layer: the flatbuffer verifier and the TFLite reader/writer (file <-> IR)."""
