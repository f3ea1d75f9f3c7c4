"""Model versions and how they run: the versioned, checksummed store (``artifacts``), the notebooks'
architectures, the one reader of Keras model files and list of allowed layers (``keras_files``), the
ONNX export and the runtimes that execute a version, the import of the notebooks' own files
(``legacy``: their checks in ``legacy_checks``, the restricted unpickler in ``safe_pickle``), and the
shipped default versions (``shipped``)."""
