"""The Bliss 1.x data-node wire format: key layout, encodings, writers and the reader.

Only this package talks to Redis.
"""
