import { test } from "uvu";
import * as assert from "uvu/assert";
import * as grpc from "@grpc/grpc-js";
import {
  ActiveJobsRecord,
  clientErrorOf,
  CoordinatorRecord,
  CoordinatorUnavailableError,
  createLogger,
  decodeWorkSpec,
  errorFields,
  errorOf,
  HeartbeatRecord,
  InputError,
  InvalidRequestError,
  JobStateError,
  LeaseRecord,
  ModelError,
  ProtocolError,
  sameMac,
  statusOf,
  tileMac,
  UnauthenticatedError,
  UnknownJobError,
  verifyTileMac,
  type WorkerHeartbeat,
} from "../../common/src/mod.js";

const bytes = (v: unknown) => new TextEncoder().encode(typeof v === "string" ? v : JSON.stringify(v));

const beat: WorkerHeartbeat = { workerId: "gpu-1", host: "node-3", pid: 42, device: "cuda", concurrency: 2, state: "busy", tilesDone: 7, pairsDone: 700, currentTiles: ["j1/abc"], startedAt: 1, at: 2 };

test("every KV record has one codec: round trip, and a clear ProtocolError naming record and field for anything else", () => {
  assert.equal(HeartbeatRecord.decode(HeartbeatRecord.encode(beat)), beat);
  for (const [raw, why] of [
    ["not json", /worker heartbeat record "k" is not JSON/],
    [{ ...beat, device: "tpu" }, /field "device"/],
    [{ ...beat, concurrency: 0 }, /field "concurrency"/],
    [{ ...beat, workerId: "a b" }, /field "workerId"/],
    [[1, 2], /worker heartbeat record "k"/],
  ] as const) {
    const err = (() => {
      try {
        HeartbeatRecord.decode(bytes(raw), "k");
      } catch (e) {
        return e;
      }
    })();
    assert.instance(err, ProtocolError);
    assert.match(String((err as Error).message), why);
  }
  assert.equal(ActiveJobsRecord.decode(bytes(["j1", "j2"])), ["j1", "j2"]);
  assert.throws(() => ActiveJobsRecord.decode(bytes(["../etc"])), /active jobs record/);
  assert.throws(() => CoordinatorRecord.decode(bytes({ address: "nohostport", startedAt: 1, pid: 1 })), /HOST:PORT/);
  assert.equal(CoordinatorRecord.decode(bytes({ address: "c:50051", startedAt: 1, pid: 1 })).address, "c:50051");
  assert.throws(() => LeaseRecord.decode(bytes({ holder: "h" })), /coordinator lease record/);
  assert.throws(() => decodeWorkSpec(bytes({ jobId: "j1", modelHash: "0".repeat(64), modelFiles: ["../../x"] })), /work spec: field "modelFiles.0"/);
});

test("tile authentication codes: bound to key, job, tile id and payload; constant-time comparisons", () => {
  const key = new Uint8Array(32).fill(7);
  const data = bytes("tile payload");
  const mac = tileMac(key, "j1", "t".repeat(64), data);
  assert.ok(verifyTileMac(key, "j1", "t".repeat(64), data, mac));
  assert.not.ok(verifyTileMac(new Uint8Array(32).fill(8), "j1", "t".repeat(64), data, mac), "another key");
  assert.not.ok(verifyTileMac(key, "j2", "t".repeat(64), data, mac), "another job");
  assert.not.ok(verifyTileMac(key, "j1", "u".repeat(64), data, mac), "another tile id in the header");
  assert.not.ok(verifyTileMac(key, "j1", "t".repeat(64), bytes("tile payloae"), mac), "an altered payload");
  assert.not.ok(verifyTileMac(key, "j1", "t".repeat(64), data, null), "no code");
  assert.not.ok(verifyTileMac(key, "j1", "t".repeat(64), data, "zz"), "a malformed code");
  assert.ok(sameMac(mac, mac));
  assert.not.ok(sameMac(mac, null));
});

test("one error mapping: server errors to gRPC status and back to the same client class; the embedded path agrees", () => {
  const cases: [Error, grpc.status, string][] = [
    [UnknownJobError.forJob("j9"), grpc.status.NOT_FOUND, "UnknownJobError"],
    [new CoordinatorUnavailableError("planning"), grpc.status.UNAVAILABLE, "CoordinatorUnavailableError"],
    [new ProtocolError("bad upload"), grpc.status.INVALID_ARGUMENT, "InvalidRequestError"],
    [new InputError({ file: "spec", field: "budget" }, "out of range"), grpc.status.INVALID_ARGUMENT, "InvalidRequestError"],
    [new InvalidRequestError("forged"), grpc.status.INVALID_ARGUMENT, "InvalidRequestError"],
    [new UnauthenticatedError("token"), grpc.status.UNAUTHENTICATED, "UnauthenticatedError"],
    [new JobStateError("not done"), grpc.status.FAILED_PRECONDITION, "JobStateError"],
    [new Error("disk on fire"), grpc.status.INTERNAL, "CoordinatorInternalError"],
  ];
  for (const [err, code, client] of cases) {
    assert.is(statusOf(err).code, code, err.name);
    assert.is(errorOf({ code, details: err.message }).name, client);
    const direct = clientErrorOf(err);
    assert.is(direct.name, client, `embedded path for ${err.name}`);
    assert.is(direct.message, err.message);
    assert.is((direct as { code?: number }).code, code, "the client error keeps the status code");
  }
  assert.is(errorOf({ code: grpc.status.DEADLINE_EXCEEDED, details: "slow" }).name, "CoordinatorUnavailableError");
  const mapped = errorOf({ code: grpc.status.NOT_FOUND, details: "x" });
  assert.is(errorOf(mapped), mapped, "already mapped errors pass through");
});

test("structured logs: JSON lines with job/tile/worker fields and levels; the pretty format starts with the time; expected errors carry no stack", () => {
  const lines: string[] = [];
  const json = createLogger({ format: "json", level: "info", write: (l) => void lines.push(l) });
  json.child({ worker: "w1" }).info({ job: "j1", tile: "abc" }, "tile stored");
  json.debug("not shown at info");
  json.warn({ ...errorFields(new ModelError("bundle broken")) }, "model");
  json.error({ ...errorFields(new Error("a bug")) }, "internal");
  assert.is(lines.length, 3);
  const first = JSON.parse(lines[0]);
  assert.equal([first.level, first.msg, first.job, first.tile, first.worker], [30, "tile stored", "j1", "abc", "w1"]);
  assert.is(typeof first.time, "number");
  const expected = JSON.parse(lines[1]);
  assert.equal([expected.level, expected.error, expected.errorType, expected.err], [40, "bundle broken", "ModelError", undefined]);
  assert.match(JSON.parse(lines[2]).err.stack, /a bug/);

  const pretty: string[] = [];
  const p = createLogger({ format: "pretty", write: (l) => void pretty.push(l) });
  p.info({ job: "j1", worker: "w 2", n: 3 }, "tile 3f2a started");
  assert.match(pretty[0], /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z INFO  tile 3f2a started job=j1 worker="w 2" n=3\n$/);
  assert.ok(!Number.isNaN(Date.parse(pretty[0].split(" ")[0])));
});

test.run();
