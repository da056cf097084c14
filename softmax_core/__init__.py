"""The math and the data: pure numpy + Pillow. No Prefect, no S3."""
