// Bytes from outside (a NATS message's data, a webhook's body) as fire parameters: a JSON object
// becomes the parameters themselves; anything else goes into one field, so no input is refused
// for its shape and none can break what reads the payload later.
import { jsonTextTooDeepAt } from "../contracts/index.ts";

const strictUtf8 = new TextDecoder("utf-8", { fatal: true });

/**
 * `bytes` as parameters: a JSON object as itself, another JSON value (array, string, number,
 * boolean, null) under `fields.value`, and bytes that are not JSON — or not UTF-8, or nested
 * deeper than MAX_JSON_DEPTH, which the gateway refuses in request bodies too — base64 under
 * `fields.base64`. Empty bytes give no parameters.
 */
export function bytesAsParameters(bytes: Uint8Array, fields: { value: string; base64: string }): Record<string, unknown> {
  if (bytes.length === 0) return {};
  const asBase64 = () => ({ [fields.base64]: Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("base64") });
  let text: string;
  try {
    text = strictUtf8.decode(bytes);
  } catch {
    return asBase64();
  }
  if (jsonTextTooDeepAt(text) >= 0) return asBase64();
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return asBase64();
  }
  if (value !== null && typeof value === "object" && !Array.isArray(value)) return value as Record<string, unknown>;
  return { [fields.value]: value };
}
