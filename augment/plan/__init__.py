"""Planning: samples and their names, the on-disk run index, hold-out, balancing, shards, the tasks."""
