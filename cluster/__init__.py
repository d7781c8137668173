"""Starting and joining the cluster: local Ray, the embedded Redis, the configured binds."""
