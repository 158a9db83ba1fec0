"""Runnable examples of versions that bring their own model (see ``examples/README.md``).

Importable from the repository root (``examples.sklearn_runtime:SklearnRuntime``,
``examples.digits_app:app_builder``); Ray's workers must be able to import it too.
"""
