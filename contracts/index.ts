// The contracts every component shares. Import from here, never redefine.
export * from "./nats.ts";
export * from "./schemas.ts";
export * from "./json-bounds.ts";
