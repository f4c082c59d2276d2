package gafka.interop;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;

import org.apache.kafka.common.compress.Compression;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.header.internals.RecordHeader;
import org.apache.kafka.common.record.TimestampType;
import org.apache.kafka.common.record.internal.ControlRecordType;
import org.apache.kafka.common.record.internal.EndTransactionMarker;
import org.apache.kafka.common.record.internal.FileLogInputStream.FileChannelRecordBatch;
import org.apache.kafka.common.record.internal.FileRecords;
import org.apache.kafka.common.record.internal.MemoryRecords;
import org.apache.kafka.common.record.internal.MemoryRecordsBuilder;
import org.apache.kafka.common.record.internal.Record;
import org.apache.kafka.common.record.internal.RecordBatch;
import org.apache.kafka.common.utils.Time;
import org.apache.kafka.server.storage.log.FetchIsolation;
import org.apache.kafka.server.util.KafkaScheduler;
import org.apache.kafka.storage.internals.log.FetchDataInfo;
import org.apache.kafka.storage.internals.log.LogConfig;
import org.apache.kafka.storage.internals.log.LogDirFailureChannel;
import org.apache.kafka.storage.internals.log.LogSegment;
import org.apache.kafka.storage.internals.log.ProducerStateManagerConfig;
import org.apache.kafka.storage.internals.log.UnifiedLog;
import org.apache.kafka.storage.log.metrics.BrokerTopicStats;

import java.io.File;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.Arrays;
import java.util.Base64;
import java.util.HashMap;
import java.util.Map;
import java.util.Optional;

/**
 * Writes real Kafka partition directories with Kafka's own storage code, and reads segment files back
 * with Kafka's own record classes, for gafka's interop tests.
 *
 * <p>Reads one JSON request on stdin and prints one JSON answer on stdout; all byte strings are base64,
 * {@code null} stays {@code null}. Several jobs go in one request so the tests start few JVMs.
 *
 * <pre>
 * {"command": "write", "jobs": [{"dir": ".../topic-0", "segment_bytes": 1048576, "index_interval_bytes": 4096,
 *   "batches": [{"codec": "zstd", "producer_id": 7, "producer_epoch": 1, "base_sequence": 0,
 *                "partition_leader_epoch": 0, "is_transactional": false, "log_append_time": null,
 *                "records": [{"key": "a2V5", "value": null, "timestamp": 1700000000000,
 *                             "headers": [["h", "dmFs"]]}]},
 *               {"control": "commit", "producer_id": 7, "producer_epoch": 1, "timestamp": 1700000000000}]}]}
 *   -> {"jobs": [{"dir": ..., "log_end_offset": N, "files": [...], "segments": [{"file": ..., "batches": [...]}]}]}
 *
 * {"command": "open", "jobs": [{"dir": ".../topic-0", "clean": true, "segment_bytes": ..., "index_interval_bytes": ...}]}
 *   -> {"jobs": [{"log_start_offset": ..., "log_end_offset": ..., "segments": [...], "records": [...]}]}
 *
 * {"command": "read", "files": [".../00000000000000000000.log"]}
 *   -> {"files": [{"file": ..., "batches": [...]}]}
 * </pre>
 *
 * <p>A write job goes through {@link UnifiedLog#appendAsFollower}, the path a replica takes: the batches
 * land exactly as {@link MemoryRecordsBuilder} built them (offsets assigned consecutively from 0), and
 * Kafka's {@code LogSegment} maintains the {@code .index}/{@code .timeindex} files and rolls segments at
 * {@code segment_bytes}. The answer describes the directory as Kafka's {@link FileRecords} reads it back.
 */
public final class KafkaSegmentWriter {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final Base64.Encoder B64 = Base64.getEncoder();
    private static final Base64.Decoder B64D = Base64.getDecoder();

    private KafkaSegmentWriter() {
    }

    public static void main(String[] args) throws Exception {
        JsonNode request = JSON.readTree(System.in);
        String command = request.path("command").asText();
        ObjectNode answer = JSON.createObjectNode();
        switch (command) {
            case "write" -> {
                ArrayNode jobs = answer.putArray("jobs");
                for (JsonNode job : request.path("jobs")) {
                    jobs.add(write(job));
                }
            }
            case "open" -> {
                ArrayNode jobs = answer.putArray("jobs");
                for (JsonNode job : request.path("jobs")) {
                    jobs.add(open(job));
                }
            }
            case "read" -> {
                ArrayNode files = answer.putArray("files");
                for (JsonNode path : request.path("files")) {
                    ObjectNode file = files.addObject();
                    file.put("file", path.asText());
                    file.set("batches", read(new File(path.asText())));
                }
            }
            default -> throw new IllegalArgumentException("unknown command " + command + "; expected write, open or read");
        }
        System.out.write(JSON.writeValueAsBytes(answer));
        System.out.flush();
    }

    private static LogConfig config(JsonNode job) {
        Map<String, Object> props = new HashMap<>();
        props.put(LogConfig.INTERNAL_SEGMENT_BYTES_CONFIG, job.path("segment_bytes").asInt(1024 * 1024 * 1024));
        props.put("index.interval.bytes", job.path("index_interval_bytes").asInt(4096));
        return new LogConfig(props);
    }

    static UnifiedLog openLog(File dir, LogConfig config, KafkaScheduler scheduler, boolean clean)
            throws IOException {
        return UnifiedLog.create(
            dir, config, 0L, 0L, scheduler, new BrokerTopicStats(), Time.SYSTEM,
            900_000, new ProducerStateManagerConfig(86_400_000, false), 600_000,
            new LogDirFailureChannel(1), clean, Optional.empty());
    }

    private static ObjectNode write(JsonNode job) throws Exception {
        File dir = new File(job.path("dir").asText());
        if (!dir.mkdirs() && !dir.isDirectory()) {
            throw new IOException("cannot create " + dir);
        }
        KafkaScheduler scheduler = new KafkaScheduler(1);
        scheduler.startup();
        UnifiedLog log = openLog(dir, config(job), scheduler, true);
        long nextOffset = 0;
        try {
            for (JsonNode batch : job.path("batches")) {
                MemoryRecords records = build(batch, nextOffset);
                log.appendAsFollower(records, batch.path("partition_leader_epoch").asInt(0));
                nextOffset = log.logEndOffset();
            }
            log.flush(true);
        } finally {
            log.close();
            scheduler.shutdown();
        }

        ObjectNode out = JSON.createObjectNode();
        out.put("dir", dir.getPath());
        out.put("log_end_offset", nextOffset);
        String[] names = dir.list();
        Arrays.sort(names);
        ArrayNode files = out.putArray("files");
        ArrayNode segments = out.putArray("segments");
        for (String name : names) {
            files.add(name);
            if (name.endsWith(".log")) {
                ObjectNode segment = segments.addObject();
                segment.put("file", name);
                segment.set("batches", read(new File(dir, name)));
            }
        }
        return out;
    }

    /**
     * Opens an existing partition directory (gafka's) with Kafka's UnifiedLog, either as after a clean
     * shutdown (Kafka trusts the .index/.timeindex files as they are) or after a crash (Kafka recovers
     * every segment from offset 0, rebuilding both indexes). Reports Kafka's view: the offsets, the
     * position Kafka's offset index leads to for every batch's first and last offset, the offset Kafka's
     * time index leads to for every batch's max timestamp, and every record read through UnifiedLog.read.
     */
    private static ObjectNode open(JsonNode job) throws Exception {
        File dir = new File(job.path("dir").asText());
        KafkaScheduler scheduler = new KafkaScheduler(1);
        scheduler.startup();
        UnifiedLog log = openLog(dir, config(job), scheduler, job.path("clean").asBoolean(true));
        ObjectNode out = JSON.createObjectNode();
        try {
            out.put("dir", dir.getPath());
            out.put("log_start_offset", log.logStartOffset());
            out.put("log_end_offset", log.logEndOffset());
            ArrayNode segments = out.putArray("segments");
            for (LogSegment segment : log.logSegments()) {
                ObjectNode s = segments.addObject();
                s.put("base_offset", segment.baseOffset());
                s.put("size", segment.size());
                ArrayNode lookups = s.putArray("offset_lookups");
                ArrayNode timeLookups = s.putArray("timestamp_lookups");
                for (FileChannelRecordBatch batch : segment.log().batches()) {
                    for (long offset : new long[] {batch.baseOffset(), batch.lastOffset()}) {
                        FileRecords.LogOffsetPosition found = segment.translateOffset(offset);
                        ArrayNode lookup = lookups.addArray();
                        lookup.add(offset);
                        lookup.add(found == null ? -1 : found.position);
                    }
                    Optional<FileRecords.TimestampAndOffset> found =
                        segment.findOffsetByTimestamp(batch.maxTimestamp(), segment.baseOffset());
                    ArrayNode lookup = timeLookups.addArray();
                    lookup.add(batch.maxTimestamp());
                    lookup.add(found.map(t -> t.offset).orElse(-1L));
                }
            }
            ArrayNode records = out.putArray("records");
            long offset = log.logStartOffset();
            while (offset < log.logEndOffset()) {
                FetchDataInfo fetched = log.read(offset, 1024 * 1024, FetchIsolation.LOG_END, true);
                long next = offset;
                for (RecordBatch batch : fetched.records.batches()) {
                    if (!batch.isValid()) {
                        throw new IllegalStateException("Kafka read an invalid batch at offset " + batch.baseOffset());
                    }
                    for (Record record : batch) {
                        if (record.offset() >= offset) {
                            records.add(describe(record));
                        }
                    }
                    next = batch.nextOffset();
                }
                if (next <= offset) {
                    throw new IllegalStateException("UnifiedLog.read made no progress at offset " + offset);
                }
                offset = next;
            }
        } finally {
            log.close();
            scheduler.shutdown();
        }
        return out;
    }

    static MemoryRecords build(JsonNode batch, long baseOffset) {
        String control = batch.path("control").asText("");
        if (!control.isEmpty()) {  // a transaction marker: "commit" or "abort"
            ControlRecordType type = control.equals("commit") ? ControlRecordType.COMMIT : ControlRecordType.ABORT;
            return MemoryRecords.withEndTransactionMarker(
                baseOffset,
                batch.path("timestamp").asLong(),
                batch.path("partition_leader_epoch").asInt(0),
                batch.path("producer_id").asLong(),
                (short) batch.path("producer_epoch").asInt(),
                new EndTransactionMarker(type, 0));
        }
        Compression compression = Compression.of(batch.path("codec").asText("none")).build();
        JsonNode logAppendTime = batch.path("log_append_time");
        boolean appendTime = logAppendTime.isIntegralNumber();
        ByteBuffer buffer = ByteBuffer.allocate(1024 * 1024);
        MemoryRecordsBuilder builder = MemoryRecords.builder(
            buffer,
            RecordBatch.MAGIC_VALUE_V2,
            compression,
            appendTime ? TimestampType.LOG_APPEND_TIME : TimestampType.CREATE_TIME,
            baseOffset,
            appendTime ? logAppendTime.asLong() : RecordBatch.NO_TIMESTAMP,
            batch.path("producer_id").asLong(RecordBatch.NO_PRODUCER_ID),
            (short) batch.path("producer_epoch").asInt(RecordBatch.NO_PRODUCER_EPOCH),
            batch.path("base_sequence").asInt(RecordBatch.NO_SEQUENCE),
            batch.path("is_transactional").asBoolean(false),
            batch.path("partition_leader_epoch").asInt(0));
        for (JsonNode record : batch.path("records")) {
            JsonNode headerList = record.path("headers");
            Header[] headers = new Header[headerList.size()];
            for (int i = 0; i < headers.length; i++) {
                JsonNode pair = headerList.get(i);
                headers[i] = new RecordHeader(pair.get(0).asText(), bytes(pair.get(1)));
            }
            builder.append(record.path("timestamp").asLong(), bytes(record.get("key")), bytes(record.get("value")), headers);
        }
        return builder.build();
    }

    /** Every batch of a segment file as Kafka's FileRecords sees it, records included. */
    static ArrayNode read(File file) throws IOException {
        ArrayNode batches = JSON.createArrayNode();
        try (FileRecords records = FileRecords.open(file, false)) {
            for (FileChannelRecordBatch batch : records.batches()) {
                ObjectNode b = batches.addObject();
                b.put("base_offset", batch.baseOffset());
                b.put("last_offset", batch.lastOffset());
                b.put("position", batch.position());
                b.put("size", batch.sizeInBytes());
                b.put("magic", batch.magic());
                b.put("crc", batch.checksum());
                b.put("valid", batch.isValid());
                b.put("codec", batch.compressionType().name);
                b.put("timestamp_type", batch.timestampType().name);
                b.put("max_timestamp", batch.maxTimestamp());
                b.put("producer_id", batch.producerId());
                b.put("producer_epoch", batch.producerEpoch());
                b.put("base_sequence", batch.baseSequence());
                b.put("last_sequence", batch.lastSequence());
                b.put("partition_leader_epoch", batch.partitionLeaderEpoch());
                b.put("is_transactional", batch.isTransactional());
                b.put("is_control", batch.isControlBatch());
                ArrayNode recs = b.putArray("records");
                for (Record record : batch) {
                    recs.add(describe(record));
                }
            }
        }
        return batches;
    }

    static ObjectNode describe(Record record) {
        ObjectNode r = JSON.createObjectNode();
        r.put("offset", record.offset());
        r.put("timestamp", record.timestamp());
        r.put("sequence", record.sequence());
        putBytes(r, "key", record.key());
        putBytes(r, "value", record.value());
        ArrayNode headers = r.putArray("headers");
        for (Header header : record.headers()) {
            ArrayNode pair = headers.addArray();
            pair.add(header.key());
            pair.add(header.value() == null ? null : B64.encodeToString(header.value()));
        }
        return r;
    }

    private static byte[] bytes(JsonNode node) {
        return node == null || node.isNull() ? null : B64D.decode(node.asText());
    }

    private static void putBytes(ObjectNode node, String field, ByteBuffer buffer) {
        if (buffer == null) {
            node.putNull(field);
            return;
        }
        byte[] bytes = new byte[buffer.remaining()];
        buffer.duplicate().get(bytes);
        node.put(field, B64.encodeToString(bytes));
    }
}
