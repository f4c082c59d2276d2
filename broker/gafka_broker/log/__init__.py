"""The partition log: Kafka-format segments, sparse indexes, crash recovery, retention and flushing.

Pieces, as in Kafka's log layer:

- :mod:`.config`      per-topic log settings under Kafka's names (``segment.bytes``, ``retention.ms``, ...)
- :mod:`.offset_index` and :mod:`.time_index`  the sparse ``.index`` and ``.timeindex`` files
- :mod:`.segment`     one ``.log`` file with its two indexes
- :mod:`.checkpoint`  atomically written checkpoint files
- :mod:`.partition_log`  one partition replica: append, read, truncate, roll, retention, recovery
- :mod:`.group_commit`  one fsync for every append waiting on it
- :mod:`.manager`     every partition under a data directory, clean-shutdown marker and checkpoints
- :mod:`.cleaner`     Kafka's log cleaner for one compacted log (offset map, recopy, crash-safe swap)
- :mod:`.cleaner_thread`  the background thread choosing the dirtiest compacted log, throttled
"""
