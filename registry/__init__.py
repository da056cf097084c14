"""Versioned model storage: stores (local folder, S3) and the registry protocol."""
