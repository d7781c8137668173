"""The FastAPI control plane (jobs, progress, reports), built on the cluster layer."""
