// Which triggers answer `POST /api/v1/webhooks/{ns}/{trigger}`, and how callers prove who they
// are: two trigger annotations. The secret is write-only: the API shows it redacted, and a PUT that
// sends the redacted value back (a client updating what it read) keeps the stored one.
import { createHmac, timingSafeEqual } from "node:crypto";
import type { KeyValue } from "../contracts/index.ts";

/** `true`: exposed, every request signed with the secret; `"unsigned"`: exposed to anyone. */
export const WEBHOOK_ANNOTATION = "webhook";
/** The HMAC-SHA256 key of a signed webhook. */
export const WEBHOOK_SECRET_ANNOTATION = "webhook-secret";
/** What the API shows instead of a secret. */
export const REDACTED_SECRET = "********";
const MAX_SECRET_LENGTH = 1024;

export type WebhookConfig = { exposed: false } | { exposed: true; secret?: string };

const annotation = (annotations: readonly KeyValue[], key: string): unknown => {
  // A later entry wins, as keyValuesToObject merges them.
  let value: unknown;
  for (const a of annotations) if (a.key === key) value = a.value;
  return value;
};

/**
 * How a trigger answers webhooks. A `webhook: true` without a usable secret is not exposed at all:
 * a signed webhook that silently took unsigned requests would be worse than none.
 */
export function webhookConfig(annotations: readonly KeyValue[]): WebhookConfig {
  const mode = annotation(annotations, WEBHOOK_ANNOTATION);
  const secret = annotation(annotations, WEBHOOK_SECRET_ANNOTATION);
  const usableSecret = typeof secret === "string" && secret.length > 0 && secret !== REDACTED_SECRET ? secret : undefined;
  if (mode === true) return usableSecret ? { exposed: true, secret: usableSecret } : { exposed: false };
  // A secret given with "unsigned" is still checked: the stricter reading of a mixed setting.
  if (mode === "unsigned") return { exposed: true, ...(usableSecret && { secret: usableSecret }) };
  return { exposed: false };
}

/** Why the webhook annotations of a trigger PUT are not valid (`annotations.<i>.value: …`), or undefined. */
export function webhookAnnotationsIssue(annotations: readonly KeyValue[]): string | undefined {
  for (const [i, { key, value }] of annotations.entries()) {
    if (key === WEBHOOK_ANNOTATION && value !== true && value !== false && value !== "unsigned") {
      return `annotations.${i}.value: webhook must be true (requests signed with webhook-secret), "unsigned" or false`;
    }
    if (key === WEBHOOK_SECRET_ANNOTATION && (typeof value !== "string" || value.length === 0 || value.length > MAX_SECRET_LENGTH)) {
      return `annotations.${i}.value: webhook-secret must be a string of 1 to ${MAX_SECRET_LENGTH} characters`;
    }
  }
  const mode = annotation(annotations, WEBHOOK_ANNOTATION);
  if (mode === true && annotation(annotations, WEBHOOK_SECRET_ANNOTATION) === undefined) {
    return `annotations: webhook: true needs a webhook-secret annotation (or webhook: "unsigned" for a webhook anyone may call)`;
  }
  return undefined;
}

/** `annotations` as the API shows them: the secret replaced by REDACTED_SECRET. */
export function redactWebhookSecret(annotations: readonly KeyValue[]): KeyValue[] {
  return annotations.map((a) => (a.key === WEBHOOK_SECRET_ANNOTATION ? { key: a.key, value: REDACTED_SECRET } : a));
}

/** `incoming` with a redacted secret replaced by the one in `stored` (a client sent back what it read). */
export function keepWebhookSecret(incoming: readonly KeyValue[], stored: readonly KeyValue[] | undefined): KeyValue[] {
  const previous = stored && annotation(stored, WEBHOOK_SECRET_ANNOTATION);
  return incoming.map((a) =>
    a.key === WEBHOOK_SECRET_ANNOTATION && a.value === REDACTED_SECRET && typeof previous === "string" ? { key: a.key, value: previous } : a,
  );
}

/** Headers that may carry `sha256=<hex>` of the body: GitHub's and Vespid's own. */
export const SIGNATURE_HEADERS = ["x-hub-signature-256", "x-vespid-signature"] as const;

export type SignatureCheck = "valid" | "missing" | "invalid";

/**
 * Checks `sha256=<hex HMAC-SHA256 of body with secret>` in the first signature header present.
 * Compared in constant time, so the answer's timing tells nothing about how much of a forged
 * signature was right.
 */
export function checkSignature(body: Uint8Array, secret: string, header: (name: string) => string | undefined): SignatureCheck {
  const given = SIGNATURE_HEADERS.map(header).find((v) => v !== undefined);
  if (given === undefined) return "missing";
  const match = /^sha256=([0-9a-fA-F]{64})$/.exec(given.trim());
  if (!match) return "invalid";
  const expected = createHmac("sha256", secret).update(body).digest();
  return timingSafeEqual(expected, Buffer.from(match[1]!, "hex")) ? "valid" : "invalid";
}
