"""The bundled example model (made by tools/make_example_model.py)."""
