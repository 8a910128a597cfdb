"""The patient breach self-check service (FastAPI). Start it with ``selfcheck serve``."""
