"""Campaign ingest: CSV/Parquet/XLSX read by Ray Data into validated, planned, routed Arrow partitions.
Owns the prepared files of a job; imports only ``ulak``."""
