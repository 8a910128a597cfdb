"""Test helpers shared by every test package: generated datasets and real server processes."""
