// Query parameters shared by the routes, parsed with zod like every other input.
import { z } from "zod";

/** OpenWhisk's flags are the literal strings `true` and `false`; absent means false. */
export const flag = z
  .enum(["true", "false"])
  .optional()
  .transform((value) => value === "true");
