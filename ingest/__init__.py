"""Campaign ingest: CSV/Parquet/XLSX read by Ray Data into validated, planned, routed Arrow partitions."""
