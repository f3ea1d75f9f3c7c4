"""Model versions and how they run: the versioned, checksummed store (``artifacts``), the notebooks'
architectures, the ONNX export and the runtimes that execute a version, the import of the
notebooks' own files (``legacy``), and the shipped default versions (``shipped``)."""
