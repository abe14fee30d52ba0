"""The store on disk: content-addressed blobs, per-variant snapshots, path safety, and `toolkit cache`."""
