// Calls the gateway the way app frontends do, with real third-party clients:
// @connectrpc/connect-web (Connect JSON, Connect binary, gRPC-Web) and
// @grpc/grpc-js (native gRPC over HTTP/2). Messages are described at run time by
// a FileDescriptorSet the Python test writes, so no JS code generation is needed.
//
// Usage: node call.mjs <spec.json>
// The spec: { descriptorSet, calls: [ { transport, url, service, method, request,
//   token?, headers?, timeoutMs?, maxMessages?, useHttpGet? } ] }
// Prints one JSON array: per call { ok, messages, requestId, error? }.
//
// Or: node call.mjs --serve <descriptorSet>
// Reads one call per line on stdin and answers each with one result line on
// stdout, so a test can play a long dependent story without a process per call.
import { readFileSync } from "node:fs";
import { createInterface } from "node:readline";
import { createClient, ConnectError } from "@connectrpc/connect";
import { createConnectTransport, createGrpcWebTransport } from "@connectrpc/connect-web";
import {
  create,
  createFileRegistry,
  fromBinary,
  fromJson,
  toBinary,
  toJson,
} from "@bufbuild/protobuf";
import { FileDescriptorSetSchema } from "@bufbuild/protobuf/wkt";
import grpc from "@grpc/grpc-js";

const CODE_NAMES = [
  "ok", "canceled", "unknown", "invalid_argument", "deadline_exceeded", "not_found",
  "already_exists", "permission_denied", "resource_exhausted", "failed_precondition",
  "aborted", "out_of_range", "unimplemented", "internal", "unavailable", "data_loss",
  "unauthenticated",
];

const serving = process.argv[2] === "--serve";
const spec = serving
  ? { descriptorSet: process.argv[3], calls: [] }
  : JSON.parse(readFileSync(process.argv[2], "utf8"));
const registry = createFileRegistry(
  fromBinary(FileDescriptorSetSchema, readFileSync(spec.descriptorSet)),
);
const errorInfoSchema = registry.getMessage("google.rpc.ErrorInfo");
const statusSchema = registry.getMessage("google.rpc.Status");
const badRequestSchema = registry.getMessage("google.rpc.BadRequest");

function authHeaders(call) {
  const headers = { ...(call.headers ?? {}) };
  if (call.token) headers.authorization = `Bearer ${call.token}`;
  return headers;
}

function describeDetails(details) {
  const info = details.info[0];
  return {
    reason: info?.reason ?? null,
    domain: info?.domain ?? null,
    metadata: info ? { ...info.metadata } : {},
    fieldViolations: details.violations.flatMap((v) =>
      v.fieldViolations.map((f) => ({ field: f.field, description: f.description })),
    ),
  };
}

async function callWeb(call) {
  const options = {
    baseUrl: call.url,
    jsonOptions: { registry },
    useBinaryFormat: call.transport !== "connect-json",
  };
  const transport =
    call.transport === "grpc-web"
      ? createGrpcWebTransport(options)
      : createConnectTransport({ ...options, useHttpGet: Boolean(call.useHttpGet) });
  const service = registry.getService(call.service);
  const method = service.methods.find((m) => m.name === call.method);
  const client = createClient(service, transport);
  const request = fromJson(method.input, call.request ?? {}, { registry });
  const result = { ok: true, messages: [], requestId: null };
  const abort = new AbortController();
  const callOptions = {
    headers: authHeaders(call),
    timeoutMs: call.timeoutMs,
    signal: abort.signal,
    onHeader: (h) => { result.requestId = h.get("x-request-id"); },
  };
  try {
    if (method.methodKind === "server_streaming") {
      for await (const message of client[method.localName](request, callOptions)) {
        result.messages.push(toJson(method.output, message, { registry }));
        if (result.messages.length >= (call.maxMessages ?? Infinity)) {
          abort.abort();
          break;
        }
      }
    } else {
      const message = await client[method.localName](request, callOptions);
      result.messages.push(toJson(method.output, message, { registry }));
    }
  } catch (err) {
    const error = ConnectError.from(err);
    result.ok = false;
    result.requestId = result.requestId ?? error.metadata.get("x-request-id");
    result.error = {
      code: CODE_NAMES[error.code],
      message: error.rawMessage,
      retryAfter: error.metadata.get("retry-after"),
      ...describeDetails({
        info: error.findDetails(errorInfoSchema),
        violations: error.findDetails(badRequestSchema),
      }),
    };
  }
  return result;
}

function unpack(anyList, schema) {
  const name = `type.googleapis.com/${schema.typeName}`;
  return anyList.filter((a) => a.typeUrl === name).map((a) => fromBinary(schema, a.value));
}

function callGrpc(call) {
  const service = registry.getService(call.service);
  const method = service.methods.find((m) => m.name === call.method);
  const client = new grpc.Client(call.url, grpc.credentials.createInsecure());
  const path = `/${service.typeName}/${method.name}`;
  const serialize = (json) => Buffer.from(toBinary(method.input, fromJson(method.input, json, { registry })));
  const deserialize = (bytes) => toJson(method.output, fromBinary(method.output, bytes), { registry });
  const metadata = new grpc.Metadata();
  for (const [key, value] of Object.entries(authHeaders(call))) metadata.set(key, value);
  const options = call.timeoutMs ? { deadline: Date.now() + call.timeoutMs } : {};
  const result = { ok: true, messages: [], requestId: null };
  const onMetadata = (md) => { result.requestId = md.get("x-request-id")[0] ?? null; };
  const onError = (err) => {
    result.ok = false;
    const raw = err.metadata?.get("grpc-status-details-bin")[0];
    const status = raw ? fromBinary(statusSchema, raw) : { details: [] };
    result.error = {
      code: CODE_NAMES[err.code],
      message: err.details,
      retryAfter: err.metadata?.get("retry-after")[0] ?? null,
      ...describeDetails({
        info: unpack(status.details, errorInfoSchema),
        violations: unpack(status.details, badRequestSchema),
      }),
    };
    if (!result.requestId) result.requestId = err.metadata?.get("x-request-id")[0] ?? null;
  };
  return new Promise((resolve) => {
    const done = () => { client.close(); resolve(result); };
    if (method.methodKind === "server_streaming") {
      const stream = client.makeServerStreamRequest(
        path, serialize, deserialize, call.request ?? {}, metadata, options,
      );
      stream.on("metadata", onMetadata);
      stream.on("data", (message) => {
        result.messages.push(message);
        if (result.messages.length >= (call.maxMessages ?? Infinity)) stream.cancel();
      });
      stream.on("error", (err) => {
        // Our own cancel after enough messages is not a failure.
        if (!(err.code === grpc.status.CANCELLED && result.messages.length >= (call.maxMessages ?? Infinity))) {
          onError(err);
        }
        done();
      });
      stream.on("end", done);
    } else {
      const unary = client.makeUnaryRequest(
        path, serialize, deserialize, call.request ?? {}, metadata, options,
        (err, message) => {
          if (err) onError(err);
          else result.messages.push(message);
          done();
        },
      );
      unary.on("metadata", onMetadata);
    }
  });
}

const callOne = (call) => (call.transport === "grpc" ? callGrpc(call) : callWeb(call));

if (serving) {
  for await (const line of createInterface({ input: process.stdin })) {
    if (line.trim()) process.stdout.write(`${JSON.stringify(await callOne(JSON.parse(line)))}\n`);
  }
} else {
  const results = [];
  for (const call of spec.calls) results.push(await callOne(call));
  process.stdout.write(JSON.stringify(results));
}
