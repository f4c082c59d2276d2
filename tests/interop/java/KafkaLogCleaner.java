package gafka.interop;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;

import org.apache.kafka.common.record.internal.Record;
import org.apache.kafka.common.record.internal.RecordBatch;
import org.apache.kafka.common.utils.Time;
import org.apache.kafka.server.storage.log.FetchIsolation;
import org.apache.kafka.server.util.KafkaScheduler;
import org.apache.kafka.storage.internals.log.Cleaner;
import org.apache.kafka.storage.internals.log.CleanerStats;
import org.apache.kafka.storage.internals.log.FetchDataInfo;
import org.apache.kafka.storage.internals.log.LogConfig;
import org.apache.kafka.storage.internals.log.LogToClean;
import org.apache.kafka.storage.internals.log.SkimpyOffsetMap;
import org.apache.kafka.storage.internals.log.UnifiedLog;
import org.apache.kafka.storage.internals.utils.Throttler;

import java.io.File;
import java.util.HashMap;
import java.util.Map;

/**
 * Cleans existing partition directories with Apache Kafka's own log cleaner ({@link Cleaner}), so gafka's
 * tests can compare gafka's cleaner with Kafka's on the same input.
 *
 * <pre>
 * {"jobs": [{"dir": ".../t-0", "segment_bytes": 2048, "index_interval_bytes": 128,
 *            "delete_retention_ms": 86400000, "now_ms": 1700000000000}]}
 *   -> {"jobs": [{"dir": ..., "next_dirty": N, "records": [...], "segments": [{"file": ..., "batches": [...]}]}]}
 * </pre>
 *
 * <p>Each job opens the directory with {@link UnifiedLog} (as after a clean shutdown), cleans from offset 0
 * to the base of the active segment at {@code now_ms} with a 64 MiB offset map (Kafka's defaults otherwise),
 * and reports every record through {@link UnifiedLog#read} and every batch of every segment file.
 */
public final class KafkaLogCleaner {
    private static final ObjectMapper JSON = new ObjectMapper();

    private KafkaLogCleaner() {
    }

    public static void main(String[] args) throws Exception {
        JsonNode request = JSON.readTree(System.in);
        ObjectNode answer = JSON.createObjectNode();
        ArrayNode jobs = answer.putArray("jobs");
        for (JsonNode job : request.path("jobs")) {
            jobs.add(clean(job));
        }
        System.out.write(JSON.writeValueAsBytes(answer));
        System.out.flush();
    }

    private static ObjectNode clean(JsonNode job) throws Exception {
        File dir = new File(job.path("dir").asText());
        Map<String, Object> props = new HashMap<>();
        props.put(LogConfig.INTERNAL_SEGMENT_BYTES_CONFIG, job.path("segment_bytes").asInt(1024 * 1024 * 1024));
        props.put("index.interval.bytes", job.path("index_interval_bytes").asInt(4096));
        props.put("cleanup.policy", "compact");
        props.put("delete.retention.ms", job.path("delete_retention_ms").asLong(86_400_000L));
        LogConfig config = new LogConfig(props);
        KafkaScheduler scheduler = new KafkaScheduler(1);
        scheduler.startup();
        UnifiedLog log = KafkaSegmentWriter.openLog(dir, config, scheduler, true);
        ObjectNode out = JSON.createObjectNode();
        try {
            Cleaner cleaner = new Cleaner(0, new SkimpyOffsetMap(64 * 1024 * 1024), 1024 * 1024, 32 * 1024 * 1024,
                0.9, new Throttler(Double.MAX_VALUE, 300, "cleaner-io", "bytes", Time.SYSTEM), Time.SYSTEM,
                tp -> { });
            long uncleanable = log.activeSegment().baseOffset();
            Map.Entry<Long, CleanerStats> result =
                cleaner.doClean(new LogToClean(log, 0L, uncleanable, false), job.path("now_ms").asLong());
            out.put("dir", dir.getPath());
            out.put("next_dirty", result.getKey());
            out.put("log_end_offset", log.logEndOffset());
            ArrayNode records = out.putArray("records");
            long offset = log.logStartOffset();
            while (offset < log.logEndOffset()) {
                FetchDataInfo fetched = log.read(offset, 1024 * 1024, FetchIsolation.LOG_END, true);
                long next = offset;
                for (RecordBatch batch : fetched.records.batches()) {
                    for (Record record : batch) {
                        if (record.offset() >= offset) {
                            records.add(KafkaSegmentWriter.describe(record));
                        }
                    }
                    next = batch.nextOffset();
                }
                if (next <= offset) {
                    break;
                }
                offset = next;
            }
            log.flush(true);
        } finally {
            log.close();
            scheduler.shutdown();
        }
        ArrayNode segments = out.putArray("segments");
        String[] names = dir.list();
        java.util.Arrays.sort(names);
        for (String name : names) {
            if (name.endsWith(".log")) {
                ObjectNode segment = segments.addObject();
                segment.put("file", name);
                segment.set("batches", KafkaSegmentWriter.read(new File(dir, name)));
            }
        }
        return out;
    }
}
