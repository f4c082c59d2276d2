package gafka.interop;

import java.util.Base64;

import org.apache.kafka.tools.api.Decoder;

/**
 * Key/value decoder for Kafka's DumpLogSegments ({@code --key-decoder-class}/{@code --value-decoder-class})
 * that prints the exact bytes as base64 instead of a lossy UTF-8 string.
 */
public final class Base64Decoder implements Decoder<String> {
    @Override
    public String fromBytes(byte[] bytes) {
        return Base64.getEncoder().encodeToString(bytes);
    }
}
