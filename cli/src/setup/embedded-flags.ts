import { checkDevice, type Device, type LogFormat, type MetricsAddress, parseLogFormat, parseMetricsAddress } from "../../../common/src/mod.js";
import { choiceOption, intOption, type OptionSpec } from "../args.js";
import { defaultStoreDir } from "./default-store.js";

/** Flags of the embedded default: where to write, where tiles are kept, how the local worker runs. */
export const EMBEDDED_OPTIONS: OptionSpec = {
  out: { type: "string" },
  store: { type: "string" },
  device: { type: "string" },
  threads: { type: "string" },
  concurrency: { type: "string" },
  quiet: { type: "boolean" },
  verbose: { type: "boolean" },
  "log-format": { type: "string" },
  metrics: { type: "string" },
};

export const EMBEDDED_HELP = `Runtime (the embedded default: coordinator and worker in this process, no NATS server):
  --out DIR              output directory (written all or nothing; an existing DIR is replaced only if
                         it holds nothing but delift's own output files)
  --store DIR            tile store: finished tiles are kept there and reused by later runs
                         (default ~/.cache/delift/tiles)
  --device cpu|cuda      onnxruntime execution provider (default cpu)
  --threads N            onnxruntime intra-op threads (default: all cores)
  --concurrency N        tiles computed at once (default 1)
  --quiet                no progress bar; --verbose logs every job and tile event
  --log-format F         pretty (default) | json: one JSON object per log line (warnings, --verbose events)
  --metrics HOST:PORT    serve Prometheus metrics on http://HOST:PORT/metrics while the job runs`;

export type EmbeddedFlags = { storeDir: string; device: Device; threads?: number; concurrency: number; quiet: boolean; verbose: boolean; logFormat: LogFormat; metrics?: MetricsAddress };

export function embeddedFlags(values: Record<string, string | boolean | undefined>): EmbeddedFlags {
  const device = choiceOption(values.device, "device", ["cpu", "cuda"] as const) ?? "cpu";
  checkDevice(device);
  return {
    storeDir: typeof values.store === "string" ? values.store : defaultStoreDir(),
    device,
    threads: intOption(values.threads, "threads", 1, 1024),
    concurrency: intOption(values.concurrency, "concurrency", 1, 64) ?? 1,
    quiet: values.quiet === true,
    verbose: values.verbose === true,
    logFormat: parseLogFormat(values["log-format"]),
    ...(typeof values.metrics === "string" ? { metrics: parseMetricsAddress(values.metrics) } : {}),
  };
}
