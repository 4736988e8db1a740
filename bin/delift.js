#!/usr/bin/env node
// onnxruntime-node 1.30 starts a telemetry client that leaves .ses and mat-debug-PID.log in the
// temp directory on every run (and would upload events where it finds a CA bundle): off unless
// the user asks for it. Set before the runtime loads, hence the dynamic import.
process.env.ORT_DISABLE_TELEMETRY ??= "1";
const { main } = await import("../dist/cli/src/main.js");

main(process.argv.slice(2)).then(
  (code) => exit(code),
  (err) => { console.error(err?.stack ?? String(err)); exit(1); },
);

/**
 * A command that failed has said why; a connection it opened before failing (NATS reconnecting
 * forever, a gRPC channel) must not keep the process alive, or a supervisor never sees the exit.
 * Successful commands close what they opened and end on their own.
 */
function exit(code) {
  process.exitCode = code;
  if (code !== 0) setTimeout(() => process.exit(code), 1000).unref();
}
