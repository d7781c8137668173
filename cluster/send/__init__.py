"""Sending a job: the runner that feeds its rows to the binds, the bind pool between it and Ray, the
A/B winner. Owns a job's sending; given its binds' maker by ``actors`` (it never makes actors itself)."""
