"""vidrd_format: the neutral shard-format contract shared by `vidrd_data` (writer) and `vidrd_model` (reader).

It imports neither package; both import it. See `vidrd_format.shards` for what it offers.
"""
