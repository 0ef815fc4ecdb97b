// Refusals as people read them. The gateway's Connect errors carry every
// google.rpc detail with its JSON as `debug` (docs/gateway.md): the ErrorInfo
// reason to branch on and the BadRequest field violations to show at fields.
import { Code, ConnectError } from "@connectrpc/connect";

export interface Refusal {
  code: Code;
  codeName: string;
  reason: string | null;
  message: string;
  metadata: Record<string, string>;
  // Field path (as the service names it, e.g. "spec.schedule.rrule") -> description.
  fields: Record<string, string>;
  retryAfterSeconds: number | null;
}

interface RawDetail {
  type: string;
  debug?: unknown;
}

export function refusal(error: unknown): Refusal {
  const err = ConnectError.from(error);
  const result: Refusal = {
    code: err.code,
    codeName: Code[err.code] ?? "Unknown",
    reason: null,
    message: err.rawMessage,
    metadata: {},
    fields: {},
    retryAfterSeconds: null,
  };
  for (const detail of err.details as RawDetail[]) {
    if (!("type" in detail) || typeof detail.debug !== "object" || detail.debug === null) continue;
    const debug = detail.debug as Record<string, unknown>;
    if (detail.type === "google.rpc.ErrorInfo") {
      result.reason = typeof debug.reason === "string" ? debug.reason : null;
      result.metadata = (debug.metadata as Record<string, string>) ?? {};
    } else if (detail.type === "google.rpc.BadRequest") {
      for (const violation of (debug.fieldViolations as { field?: string; description?: string }[]) ?? []) {
        result.fields[snakeCasePath(violation.field ?? "")] = violation.description ?? "";
      }
    } else if (detail.type === "google.rpc.RetryInfo") {
      const delay = String((debug.retryDelay as string) ?? "");
      const seconds = Number.parseFloat(delay);
      if (Number.isFinite(seconds)) result.retryAfterSeconds = seconds;
    }
  }
  return result;
}

// Services name fields in snake_case ("spec.schedule.time_zone"); camelCase
// paths are folded to the same form so forms look fields up one way.
export function snakeCasePath(path: string): string {
  return path.replace(/[A-Z]/g, (c) => "_" + c.toLowerCase());
}

// A one-line explanation for a banner.
export function explain(error: unknown): string {
  const r = refusal(error);
  const fields = Object.entries(r.fields).map(([f, d]) => `${f}: ${d}`);
  const head = r.reason ? `${r.message} (${r.reason})` : r.message;
  return fields.length ? `${head}. ${fields.join("; ")}` : head;
}

export function isUnauthenticated(error: unknown): boolean {
  return ConnectError.from(error).code === Code.Unauthenticated;
}

// The violations at one field and below it (a form shows "spec.reward.points"
// under its input, and "spec.reward" problems beside the group).
export function fieldError(fields: Record<string, string>, path: string): string | undefined {
  if (fields[path]) return fields[path];
  const nested = Object.entries(fields).find(([f]) => f.startsWith(path + ".") || f.startsWith(path + "["));
  return nested?.[1];
}
