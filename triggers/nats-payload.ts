// What a trigger fired by a NATS message receives: the message's JSON object as parameters, or
// its bytes in a field when they are not one, plus where the message came from. Nothing a
// publisher sends can make this throw.
import type { MsgHdrs } from "@nats-io/transport-node";
import { bytesAsParameters } from "./event-payload.ts";

/** The largest message data a fire carries (bytes); bigger messages are refused, not truncated. */
export const MAX_NATS_DATA_BYTES = 1024 * 1024;

/**
 * The fields Vespid adds. They start with `__nats_` so they cannot collide with a trigger's own
 * parameters, and they are set after the message's fields, so a publisher cannot forge them.
 */
export const NATS_FIELDS = {
  /** The subject the message was published on (the concrete one, not the feed's wildcard). */
  subject: "__nats_subject",
  /** Headers, name → value (several values of one name joined by ", "); {} when none. */
  headers: "__nats_headers",
  /** A JSON value that is not an object (array, string, number, boolean, null). */
  data: "__nats_data",
  /** Data that is not JSON (or not UTF-8, or nested deeper than the JSON bound), base64. */
  dataBase64: "__nats_data_base64",
  /** Stream feeds only: the stream and the message's sequence in it. */
  stream: "__nats_stream",
  streamSequence: "__nats_stream_seq",
} as const;

export interface NatsMessageFacts {
  subject: string;
  data: Uint8Array;
  headers?: MsgHdrs;
  /** For a message read from a stream. */
  stream?: { name: string; sequence: number };
}

export function natsFirePayload(msg: NatsMessageFacts): Record<string, unknown> {
  const payload: Record<string, unknown> = { ...bytesAsParameters(msg.data, { value: NATS_FIELDS.data, base64: NATS_FIELDS.dataBase64 }) };
  payload[NATS_FIELDS.subject] = msg.subject;
  payload[NATS_FIELDS.headers] = headerObject(msg.headers);
  if (msg.stream) {
    payload[NATS_FIELDS.stream] = msg.stream.name;
    payload[NATS_FIELDS.streamSequence] = msg.stream.sequence;
  }
  return payload;
}

function headerObject(headers: MsgHdrs | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  if (!headers) return out;
  for (const name of headers.keys()) out[name] = headers.values(name).join(", ");
  return out;
}
