"""The Bliss-shaped Python API: scans, acquisition channels, sequences and groups of scans."""
