"""Admission: who may spend the service's hashes (proof of work, buckets, the waiting queue)."""
