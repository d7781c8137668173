"""What a job's owner reads back: the per-row report and the campaign summary. Reads the ledger,
the job and the engagement records; writes only its own caches. Imports ``cluster.jobs``/``engagement``."""
