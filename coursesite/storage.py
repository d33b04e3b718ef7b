"""Static files storage: hashed names for ES module imports too."""
from whitenoise.storage import CompressedManifestStaticFilesStorage


class ModuleAwareStaticFilesStorage(CompressedManifestStaticFilesStorage):
    """The demo widget is plain ES modules; rewrite their `import` paths to the
    hashed names so that a deploy never mixes old and new modules."""

    support_js_module_import_aggregation = True
