"""The io layer: sources (local, S3, HTTP), TLC schema eras, readers, the feature cache, run
directories and lineage. Imports only :mod:`rapidseval.core` and the backend seam."""
